"""SIGKILL the worker in the middle of a batch, start another: nothing lost, nothing twice."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from portal.core.db import psycopg_conninfo
from tests.evaluation_helpers import upload, wait_for_batch

ROOT = Path(__file__).resolve().parents[2]
SLOW_BUT_VALID = (
    "import json, sys, time\ntime.sleep(1.5)\n"
    "n = len(json.load(open(sys.argv[1]))['cities'])\n"
    "json.dump({'tour': list(range(n))}, open(sys.argv[2], 'w'))\n"
)


def start_worker(eval_settings, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": eval_settings.database_url,
        "PORTAL_REDIS_URL": eval_settings.redis_url,
        "PORTAL_STORAGE_LOCAL_DIR": str(eval_settings.local_storage_path),
        "PORTAL_EVAL_RUNNER": "docker",
        "PORTAL_EVAL_IMAGE": eval_settings.eval_image,
        "PORTAL_EVAL_HEARTBEAT_SECONDS": "0.5",
        "PORTAL_EVAL_STALE_AFTER_SECONDS": "3",
        "PORTAL_WORKER_THREADS": "2",
        "PORTAL_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "worker", "--processes", "1"],
        env=env,
        cwd=ROOT,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the kill takes every process
    )


def counts(services) -> dict:
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM evaluation_run GROUP BY status"))


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
    leftovers = docker_client.containers.list(all=True, filters={"label": "portal.eval=1"})
    assert leftovers == []
