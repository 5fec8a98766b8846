"""Breaks found with realistic data that need no browser (issue 16): a batch that
finishes while its page is open, a log cut inside a colour code, a reason that repeats
the log's last lines, and a login form stricter than the API."""

import re

import psycopg

from portal.core.db import psycopg_conninfo
from tests.fixtures.accounting import LIMITS, record
from tests.fixtures.competition import claim_all, configure, worker_context
from tests.fixtures.evaluation import run_in_sandbox, upload
from tests.fixtures.factories import browser_login
from tests.fixtures.leaderboard import seed_board
from worker.judge import judge
from worker.kits import tsp
from worker.sandbox.base import SandboxLimits, SandboxResult
from worker.sandbox.process_runner import ProcessRunner

HX = {"HX-Request": "true"}


async def test_the_batch_poll_that_sees_it_finish_takes_cancel_away(client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Ada")
    batch_id = seed_board(services, {"Ada": [("scored", 1.0), ("scored", 2.0)]})
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        conn.execute("UPDATE evaluation_batch SET status = 'running' WHERE id = %s", (batch_id,))
    await browser_login(client, admin)
    running = await client.get(f"/admin/batches/{batch_id}", headers=HX)
    assert "Cancel batch" in running.text
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        conn.execute("UPDATE evaluation_batch SET status = 'finished' WHERE id = %s", (batch_id,))
    # The poll's fragment is what the open page shows from then on.
    finished = await client.get(f"/admin/batches/{batch_id}", headers=HX)
    assert "Re-run failed runs" in finished.text
    assert "Cancel batch" not in finished.text


def test_a_colourful_log_cut_in_the_middle_keeps_only_whole_lines():
    limits = SandboxLimits(timeout_seconds=5, memory_mib=256, log_cap_bytes=4096)
    for count in range(400, 419):  # moves the cut through every byte of a line
        source = f"for i in range({count}):\n    print(f'\\x1b[32mline {{i:04d}}\\x1b[0m')\n"
        result, _ = run_in_sandbox(ProcessRunner(), source, limits, 3)
        assert result.log_truncated
        for line in result.log.splitlines():
            assert line == "" or re.fullmatch(
                r"line \d{4}|\[\.\.\. \d+ bytes of output omitted \.\.\.\]", line
            ), (count, line)


async def test_a_failed_runs_last_log_lines_are_shown_once_beside_its_log(client, teams, settings):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[11], private_seeds=[99])
    team = await teams.create(name="Crashers")
    submission_id = await upload(client, team, "crash.py", b"raise SystemExit(1)\n")
    public_batch = (await client.get("/api/v1/competition/admin", headers=admin.auth)).json()[
        "public_batch_id"
    ]
    context = worker_context(settings)
    (run,) = claim_all(context, public_batch)
    log = "".join(f"step {n}\n" for n in range(30)) + "ValueError: no tour\n"
    ended = SandboxResult(exit_code=1, duration_ms=100, log=log)
    outcome = judge(tsp, 11, tsp.generate(11), ended, LIMITS)
    assert "step 29" in outcome.reason  # the API's reason quotes the last lines
    record(context, run, outcome, exit_code=1, cost=None, log=log)
    await browser_login(client, team)
    page = await client.get(f"/submissions/{submission_id}")
    assert "Exited with code 1." in page.text
    assert page.text.count("step 29") == 1
    assert page.text.count("ValueError: no tour") == 1


async def test_the_login_form_accepts_every_email_the_api_accepts(client, teams):
    team = await teams.create(name="Unicode", email="Ünïcödé@Exämple.org")
    page = await client.get("/login")
    field = re.search(r'<input id="email"[^>]*>', page.text).group(0)
    # type="email" makes the browser refuse a non-ASCII local part before sending it.
    assert 'type="email"' not in field and "required" in field
    api = await client.post(
        "/api/v1/auth/login", json={"email": "Ünïcödé@Exämple.org", "api_token": team.token}
    )
    assert api.status_code == 200, api.text
