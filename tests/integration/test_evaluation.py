"""Batches end to end: web app -> Redis -> real Dramatiq worker -> Docker -> scorer -> rows."""

import psycopg

from portal.core.db import psycopg_conninfo
from portal.evaluation.runs import COST_FIELDS
from tests.fixtures.competition import configure, wait_for_public_score
from tests.fixtures.evaluation import (
    ONE_MIB_FILE,
    eval_containers_left,
    example,
    fill_work,
    run_batch,
    upload,
    wait_for_batch,
)
from tests.fixtures.factories import browser_login
from tests.fixtures.leaderboard import seed_board
from tests.fixtures.public_results import Entry, Run, seed_public_batch


async def test_default_kit_scores_the_examples_in_a_clear_order(client, teams, eval_worker):
    admin = await teams.admin()
    quality = {}
    for name in ("tsp_input_order.py", "tsp_nearest_neighbour.py", "tsp_two_opt.py"):
        team = await teams.create(name=name.removesuffix(".py"))
        await upload(client, team, name, example(name))
        quality[team.team.name] = name
    batch = await run_batch(client, admin, seeds=[11, 12])
    assert batch["status"] == "finished"
    assert batch["progress"]["counts"] == {"scored": 6}
    mean = {}
    for run in batch["runs"]:
        mean.setdefault(run["team_name"], []).append(run["score"])
    mean = {team: sum(scores) / len(scores) for team, scores in mean.items()}
    ranking = sorted(mean, key=mean.get, reverse=True)
    assert ranking == ["tsp_two_opt", "tsp_nearest_neighbour", "tsp_input_order"], mean
    assert mean["tsp_input_order"] == 1.0
    assert mean["tsp_two_opt"] > mean["tsp_nearest_neighbour"] * 1.05 > 1.5
    # The participant sees per-seed results on the submission's detail.
    team_runs = [r for r in batch["runs"] if r["team_name"] == "tsp_two_opt"]
    assert {r["seed"] for r in team_runs} == {11, 12}
    assert all(r["duration_ms"] > 0 and r["attempts"] == 1 for r in team_runs)


async def test_runs_are_queued_round_robin_across_teams(client, teams, eval_worker):
    admin = await teams.admin()
    busy = await teams.create(name="Busy")
    quiet = await teams.create(name="Quiet")
    for n in range(3):
        await upload(client, busy, f"b{n}.py", example("tsp_input_order.py") + f"#{n}\n".encode())
    await upload(client, quiet, "q.py", example("tsp_input_order.py"))
    batch = await run_batch(client, admin, seeds=[1, 2], selection="unevaluated")
    order = [run["team_name"] for run in batch["runs"]]
    assert order[:4] == ["Busy", "Quiet", "Busy", "Quiet"], order
    assert len(order) == 8


async def test_final_picks_with_latest_submission_as_fallback(client, teams, eval_worker):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[3])
    picker = await teams.create(name="Picker")
    lazy = await teams.create(name="Lazy")
    first = await upload(client, picker, "p1.py", example("tsp_nearest_neighbour.py"))
    await upload(client, picker, "p2.py", example("tsp_input_order.py"))
    await client.put(f"/api/v1/submissions/{first}/final", headers=picker.auth)
    await upload(client, lazy, "l1.py", example("tsp_input_order.py"))
    latest = await upload(client, lazy, "l2.py", example("tsp_two_opt.py"))
    batch = await run_batch(client, admin, seeds=[3])
    chosen = {run["team_name"]: run["submission_id"] for run in batch["runs"]}
    assert chosen == {"Picker": first, "Lazy": latest}
    # The team sees its public score; the admin's batch stays the organizer's view.
    detail = await wait_for_public_score(client, lazy, latest)
    assert detail["public_status"] == "scored" and detail["public_score"] > 1
    assert [result["batch_name"] for result in detail["results"]] == ["Public scores"]


async def test_failures_are_results_with_reasons_and_rerun_never_duplicates(
    client, teams, eval_worker, services
):
    admin = await teams.admin()
    crasher = await teams.create(name="Crasher")
    await upload(client, crasher, "crash.py", b"import sys\nprint('about to fail')\nsys.exit(3)\n")
    batch = await run_batch(client, admin, seeds=[1, 2])
    assert batch["progress"]["counts"] == {"failed": 2}
    reason = batch["runs"][0]["reason"]
    assert reason.startswith("Exited with code 3.") and "about to fail" in reason
    assert all(run["attempts"] == 1 for run in batch["runs"])  # a crash is not retried
    # The submission's row in the batch carries the per-seed summary of its runs, with
    # what each cost.
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        (summary,) = conn.execute("SELECT seed_results FROM batch_submission").fetchone()
    assert summary == {
        str(run["seed"]): {
            "status": "failed",
            "score": None,
            "reason": run["reason"],
            "duration_ms": run["duration_ms"],
            "exit_code": 3,
            **{name: run[name] for name in COST_FIELDS},
        }
        for run in batch["runs"]
    }

    rerun = await client.post(f"/api/v1/batches/{batch['id']}/rerun-failed", headers=admin.auth)
    assert rerun.status_code == 200
    again = await wait_for_batch(client, admin, batch["id"])
    assert again["progress"]["total"] == 2  # the same two runs, not two more
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT (batch_submission_id, seed)) FROM evaluation_run"
        ).fetchone()
    assert rows == (2, 2)


async def test_filling_the_work_dir_is_a_disk_limit_the_team_sees_and_can_rerun(
    client, teams, eval_worker
):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[1])
    filler = await teams.create(name="Filler")
    submission_id = await upload(client, filler, "fill.py", fill_work(ONE_MIB_FILE, 1000).encode())
    reason = "Disk limit exceeded: the program wrote more than 32 MiB (or 10000 files) in /work."
    # The team sees it on its public evaluation: the row's status and reason, the page's
    # per-seed reason.
    detail = await wait_for_public_score(client, filler, submission_id)
    assert detail["public_status"] == "disk_limit"
    await browser_login(client, filler)
    dashboard = await client.get("/dashboard")
    assert "disk limit" in dashboard.text and reason in dashboard.text
    page = await client.get(f"/submissions/{submission_id}")
    assert "disk limit" in page.text and reason in page.text
    # An organizer's batch judges it the same; a disk limit is a failed run, so
    # "re-run failed" runs it again, in the same row.
    batch = await run_batch(client, admin, seeds=[1])
    assert batch["progress"]["counts"] == {"disk_limit": 1}
    assert batch["runs"][0]["reason"] == reason
    rerun = await client.post(f"/api/v1/batches/{batch['id']}/rerun-failed", headers=admin.auth)
    assert rerun.status_code == 200, rerun.text
    again = await wait_for_batch(client, admin, batch["id"])
    assert again["progress"]["counts"] == {"disk_limit": 1}
    assert again["progress"]["total"] == 1


async def test_cancel_stops_queued_and_running_runs(client, teams, eval_worker):
    admin = await teams.admin()
    for n in range(3):
        team = await teams.create(name=f"Slow {n}")
        await upload(client, team, "slow.py", f"import time\ntime.sleep(30)\n#{n}\n".encode())
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "to cancel", "seeds": [1, 2], "selection": "final_picks"},
    )
    batch_id = created.json()["id"]
    await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
    import asyncio

    for _ in range(50):
        detail = (await client.get(f"/api/v1/batches/{batch_id}", headers=admin.auth)).json()
        if detail["progress"]["counts"].get("running"):
            break
        await asyncio.sleep(0.2)
    cancelled = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=admin.auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["progress"]["counts"] == {"cancelled": 6}
    import docker

    # The running ones notice at their next heartbeat.
    assert eval_containers_left(docker.from_env()) == []
    detail = (await client.get(f"/api/v1/batches/{batch_id}", headers=admin.auth)).json()
    assert detail["progress"]["counts"] == {"cancelled": 6}


async def test_batch_input_is_validated_and_actions_audited(client, teams, services):
    admin = await teams.admin()
    bad = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "x", "seeds": [1, 1], "selection": "final_picks"},
    )
    assert bad.status_code == 422 and "only once" in bad.json()["error"]["message"]
    empty = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "x", "seeds": [1], "selection": "final_picks"},
    )
    nothing = await client.post(f"/api/v1/batches/{empty.json()['id']}/start", headers=admin.auth)
    assert nothing.status_code == 409
    assert "nothing to evaluate" in nothing.json()["error"]["message"]
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_log WHERE action LIKE 'batch.%' ORDER BY id"
            )
        ]
    assert actions == ["batch.create"]


async def test_the_live_results_fragment_keeps_polling_its_own_submission(client, teams, services):
    team = await teams.create(name="Poller")
    (submission_id,) = seed_public_batch(
        services, "Poller", [Entry("p.py", [Run("scored", 1.0), Run("running")])]
    )
    await browser_login(client, team)
    fragment = await client.get(f"/submissions/{submission_id}", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section class="card" id="results"')
    assert f'hx-get="/submissions/{submission_id}"' in fragment.text
    assert 'hx-trigger="every 2s"' in fragment.text


async def test_the_batch_list_shows_each_batchs_own_progress(client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Ada")
    await teams.create(name="Bo")
    done = seed_board(services, {"Ada": [("scored", 2.0), ("failed", None)]}, "Done")
    half = seed_board(
        services,
        {"Ada": [("scored", 1.0), ("running", None)], "Bo": [("queued", None)] * 2},
        "Half",
    )
    listed = await client.get("/api/v1/batches", headers=admin.auth)
    progress = {item["id"]: item["progress"] for item in listed.json()["items"]}
    assert progress[done] == {
        "total": 2,
        "done": 2,
        "counts": {"scored": 1, "failed": 1},
        "percent": 100,
    }
    assert progress[half]["total"] == 4 and progress[half]["done"] == 1
    assert progress[half]["percent"] == 25
    await browser_login(client, admin)
    page = await client.get("/admin/batches")
    assert "</progress> 2/2</td>" in page.text and "</progress> 1/4</td>" in page.text
