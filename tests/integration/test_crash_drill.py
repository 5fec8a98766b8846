"""SIGKILL the worker in the middle of a batch, start another: nothing lost, nothing twice."""

import asyncio
import os
import signal

from tests.fixtures.drills import SLOW_BUT_VALID, run_counts, start_worker
from tests.fixtures.evaluation import eval_containers_left, upload, wait_for_batch


def counts(services) -> dict:
    return run_counts(services.database_url)


async def test_killing_the_worker_mid_batch_loses_nothing_and_duplicates_nothing(
    client, teams, eval_settings, services, docker_client, tmp_path
):
    admin = await teams.admin()
    for number in range(4):
        team = await teams.create(name=f"Drill {number}")
        await upload(client, team, "slow.py", (SLOW_BUT_VALID + f"# {number}\n").encode())
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "crash drill", "seeds": [1, 2, 3, 4, 5], "selection": "final_picks"},
    )
    batch_id = created.json()["id"]
    log_path = tmp_path / "workers.log"
    first = start_worker(eval_settings, log_path)
    second = None
    try:
        await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
        for _ in range(300):
            now = counts(services)
            if now.get("scored", 0) >= 4 and now.get("running", 0) >= 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(
                f"the batch never got going: {counts(services)}\n" + log_path.read_text()[-3000:]
            )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        at_kill = counts(services)
        assert at_kill.get("running", 0) >= 1 and sum(at_kill.values()) == 20

        second = start_worker(eval_settings, log_path)
        detail = await wait_for_batch(client, admin, batch_id, wait_seconds=180)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)

    assert detail["status"] == "finished", log_path.read_text()[-3000:]
    assert detail["progress"]["counts"] == {"scored": 20}
    assert len(detail["runs"]) == 20
    assert len({(r["submission_id"], r["seed"]) for r in detail["runs"]}) == 20
    retried = [r for r in detail["runs"] if r["attempts"] > 1]
    assert 1 <= len(retried) <= at_kill["running"] + 2  # only the interrupted ones re-ran
    assert all(r["score"] == 1.0 for r in detail["runs"])
    assert eval_containers_left(docker_client) == []
