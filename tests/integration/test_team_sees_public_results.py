"""What a team sees of its own submissions, with a real worker on Docker: its public
evaluation only (never an admin batch's or the final evaluation's runs or seeds), and
its own new scores during the freeze."""

from datetime import timedelta

from tests.fixtures.competition import at, configure, wait_for_final, wait_for_public_score
from tests.fixtures.evaluation import example, run_batch, upload
from tests.fixtures.factories import browser_login

# Seeds whose digits appear nowhere else in a page or an answer.
PUBLIC_SEED = 8675309123
PRIVATE_SEED = 5550001234567
ADMIN_SEED = 3141592653589

# Writes the seed it was run on into its log, then a valid tour: a leak of a private
# run's output would show as that line.
SEED_ECHO = b"""import json, sys
task = json.load(open(sys.argv[1]))
print(f"RUN-ON-SEED-{task['seed']}")
json.dump({"tour": list(range(len(task["cities"])))}, open(sys.argv[2], "w"))
"""


async def _everything_the_team_reads(client, team, submission_id: int) -> dict[str, str]:
    await browser_login(client, team)
    hx = {"HX-Request": "true"}
    return {
        "api detail": (
            await client.get(f"/api/v1/submissions/{submission_id}", headers=team.auth)
        ).text,
        "api list": (await client.get("/api/v1/submissions", headers=team.auth)).text,
        "page": (await client.get(f"/submissions/{submission_id}")).text,
        "results fragment": (await client.get(f"/submissions/{submission_id}", headers=hx)).text,
        "dashboard": (await client.get("/dashboard")).text,
        "row fragment": (await client.get(f"/submissions/{submission_id}/row", headers=hx)).text,
    }


async def test_a_team_never_sees_an_admin_batchs_or_the_final_evaluations_runs(
    client, teams, eval_worker
):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[PUBLIC_SEED], private_seeds=[PRIVATE_SEED])
    team = await teams.create(name="Echo")
    submission_id = await upload(client, team, "echo.py", SEED_ECHO)
    await wait_for_public_score(client, team, submission_id)
    batch = await run_batch(client, admin, seeds=[ADMIN_SEED])
    assert [run["submission_id"] for run in batch["runs"]] == [submission_id]
    await configure(client, admin, ends_at=at(-timedelta(minutes=1)))
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    final = await wait_for_final(client, admin)
    assert final["final_progress"]["counts"] == {"scored": 1}

    seen = await _everything_the_team_reads(client, team, submission_id)
    for where, text in seen.items():
        for hidden in (str(PRIVATE_SEED), str(ADMIN_SEED), "test batch"):
            assert hidden not in text, f"{hidden!r} reached the team's {where}"
    # The page's chrome may name the phase; the submission's own parts never name a batch
    # but its public one.
    for where in ("api detail", "results fragment", "row fragment"):
        assert "Final evaluation" not in seen[where], where
    # What the team does see: its public run, with the log it wrote.
    assert f"RUN-ON-SEED-{PUBLIC_SEED}" in seen["page"]
    assert f"RUN-ON-SEED-{PUBLIC_SEED}" in seen["results fragment"]
    detail = (await client.get(f"/api/v1/submissions/{submission_id}", headers=team.auth)).json()
    assert detail["public_status"] == "scored" and detail["public_score"] == 1.0
    assert [result["batch_name"] for result in detail["results"]] == ["Public scores"]


async def test_during_the_freeze_a_team_still_sees_its_own_new_scores(client, teams, eval_worker):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[7, 8], freeze_at=at(-timedelta(minutes=10)))
    phase = (await client.get("/api/v1/competition")).json()["phase"]
    assert phase == "frozen"
    team = await teams.create(name="Late Climber")
    submission_id = await upload(client, team, "two_opt.py", example("tsp_two_opt.py"))
    detail = await wait_for_public_score(client, team, submission_id)
    assert detail["public_status"] == "scored"
    score = f"{detail['public_score']:.4f}"
    await browser_login(client, team)
    dashboard = (await client.get("/dashboard")).text
    assert score in dashboard
    row = await client.get(f"/submissions/{submission_id}/row", headers={"HX-Request": "true"})
    assert score in row.text and 'hx-trigger="every 2s"' not in row.text
