"""What a run cost, shown: to the team for its own public runs, to admins for every run
with per-batch sums and the full kept log; never a private run's figures to a team."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from portal.evaluation import runs
from tests.fixtures.accounting import (
    LIMITS,
    MIB,
    TIMES,
    public_runs_recorded,
    record,
)
from tests.fixtures.competition import at, claim_all, configure, worker_context
from tests.fixtures.evaluation import upload
from tests.fixtures.factories import browser_login

# A final (private) run's figures, chosen to appear nowhere else.
PRIVATE = runs.RunCost(
    cpu_user_ms=8760,
    cpu_system_ms=1110,
    peak_memory_bytes=377 * MIB,
    exit_signal=6,
    output_bytes=3 * MIB,
    output_truncated=True,
    limits=LIMITS.shown(),
)
PRIVATE_WORDS = ["9.87 s", "377 MiB", "SIGABRT", "signal 6", "9870", str(377 * MIB), "8760"]


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


KILLED_WORDS = [
    f"CPU 1.84 s of 20 s {TIMES} 1 CPU",
    "peak 212 MiB of 512 MiB",
    "killed by signal 9 (SIGKILL)",
    "output 1.2 MiB, cut to 64 KiB",
]
EXITED_WORDS = [f"CPU 0.30 s of 20 s {TIMES} 1 CPU", "peak 30 MiB of 512 MiB", "exit code 1"]


async def test_a_team_sees_what_each_of_its_public_runs_cost_beside_the_limits(
    client, teams, settings
):
    _, team, submission_id, *_ = await public_runs_recorded(client, teams, settings)
    await browser_login(client, team)
    page = await client.get(f"/submissions/{submission_id}")
    assert page.status_code == 200
    words = text_of(page.text)
    for expected in KILLED_WORDS + EXITED_WORDS + ["output 2 KiB"]:
        assert expected in words, expected
    assert f'<meter class="peak" min="0" max="{512 * MIB}.0" value="{212 * MIB}.0"' in page.text

    detail = (await client.get(f"/api/v1/submissions/{submission_id}", headers=team.auth)).json()
    (result,) = detail["results"]
    by_seed = {run["seed"]: run for run in result["runs"]}
    assert {key: by_seed[11][key] for key in ("cpu_user_ms", "exit_signal", "limits")} == {
        "cpu_user_ms": 1500,
        "exit_signal": 9,
        "limits": LIMITS.shown(),
    }
    assert (by_seed[12]["exit_code"], by_seed[12]["peak_memory_bytes"]) == (1, 30 * MIB)
    assert by_seed[11]["output_truncated"] is True and "log" not in by_seed[11]


async def test_another_team_cannot_see_a_teams_run_costs(client, teams, settings):
    _, _, submission_id, *_ = await public_runs_recorded(client, teams, settings)
    other = await teams.create(name="Nosy")
    assert (
        await client.get(f"/api/v1/submissions/{submission_id}", headers=other.auth)
    ).status_code == 404
    await browser_login(client, other)
    page = await client.get(f"/submissions/{submission_id}")
    assert page.status_code == 404 and "SIGKILL" not in page.text


async def test_admins_see_each_runs_cost_and_the_batch_sums_with_a_link_to_the_full_log(
    client, teams, settings
):
    admin, _, _, public_batch, _, claimed = await public_runs_recorded(client, teams, settings)
    await browser_login(client, admin)
    page = await client.get(f"/admin/batches/{public_batch}")
    words = text_of(page.text)
    for expected in KILLED_WORDS + EXITED_WORDS:
        assert expected in words, expected
    # The sums: 1.84 + 0.30 s of CPU, twice 2.5 s of wall time, the larger peak.
    for expected in (
        "CPU time 2.14 s in total",
        "Wall time 5.00 s in total",
        "peak of peaks 212 MiB of 512 MiB",
        "Output 1.2 MiB in total, 1 run log cut",
    ):
        assert expected in words, expected
    assert f'href="/admin/runs/{claimed[11].id}/log"' in page.text

    detail = (await client.get(f"/api/v1/batches/{public_batch}", headers=admin.auth)).json()
    assert detail["totals"] == {
        "runs_ended": 2,
        "runs_measured": 2,
        "cpu_ms": 2140,
        "wall_ms": 5000,
        "peak_memory_bytes": 212 * MIB,
        "memory_mib": 512.0,
        "output_bytes": 1258291 + 2048,
        "runs_cut": 1,
    }
    killed = next(run for run in detail["runs"] if run["seed"] == 11)
    assert (killed["cpu_system_ms"], killed["exit_signal"]) == (340, 9)


async def test_runs_without_figures_say_not_measured(client, teams, settings):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[5])
    team = await teams.create()
    submission_id = await upload(client, team, "s.py", b"print(1)\n")
    context = worker_context(settings)
    public_batch = (await client.get("/api/v1/competition/admin", headers=admin.auth)).json()[
        "public_batch_id"
    ]
    (run,) = claim_all(context, public_batch)
    record(context, run, runs.Outcome("scored", None, 1.0), exit_code=0, cost=None)
    await browser_login(client, team)
    words = text_of((await client.get(f"/submissions/{submission_id}")).text)
    for expected in ("CPU not measured", "peak memory not measured", "output not measured"):
        assert expected in words, expected
    assert "exit code 0" in words


async def test_the_full_log_page_escapes_everything_and_shows_where_it_was_cut(
    client, teams, settings
):
    admin, team, _, _, _, claimed = await public_runs_recorded(client, teams, settings)
    run_id = claimed[11].id
    await browser_login(client, admin)
    page = await client.get(f"/admin/runs/{run_id}/log")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert re.search(
        r'<mark class="cut">\[\.\.\. \d+ bytes of output omitted \.\.\.\]</mark>', page.text
    )
    assert "the end" in page.text and "killed by signal 9 (SIGKILL)" in text_of(page.text)

    download = await client.get(f"/admin/runs/{run_id}/log.txt")
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["content-disposition"] == f'attachment; filename="run-{run_id}-log.txt"'
    assert download.text.startswith("<script>alert('x')</script>red\n")
    assert "bytes of output omitted" in download.text

    await browser_login(client, team)
    for url in (f"/admin/runs/{run_id}/log", f"/admin/runs/{run_id}/log.txt"):
        refused = await client.get(url)
        # A participant is sent to the login page, as for every admin page.
        assert refused.status_code == 303 and "alert(" not in refused.text, url


async def test_a_private_runs_figures_never_reach_the_team_before_or_after_the_reveal(
    client, teams, settings
):
    admin, team, submission_id, _, context, _ = await public_runs_recorded(client, teams, settings)
    await configure(client, admin, ends_at=at(-timedelta(minutes=1)))
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    final_batch = started.json()["final_batch_id"]
    (private_run,) = claim_all(context, final_batch)
    record(
        context,
        private_run,
        runs.Outcome("scored", None, 3.0),
        exit_code=None,
        cost=PRIVATE,
        log="PRIVATE-LOG",
    )

    async def what_the_team_reads() -> dict[str, str]:
        await browser_login(client, team)
        return {
            "page": (await client.get(f"/submissions/{submission_id}")).text,
            "api": (
                await client.get(f"/api/v1/submissions/{submission_id}", headers=team.auth)
            ).text,
            "dashboard": (await client.get("/dashboard")).text,
            "log page": (await client.get(f"/admin/runs/{private_run.id}/log")).text,
        }

    # The admin sees the private run's figures ...
    await browser_login(client, admin)
    admin_view = text_of((await client.get(f"/admin/runs/{private_run.id}/log")).text)
    assert f"CPU 9.87 s of 20 s {TIMES} 1 CPU" in admin_view and "SIGABRT" in admin_view
    # ... the team never does, neither before nor after the reveal.
    for moment in ("before the reveal", "after the reveal"):
        for where, text in (await what_the_team_reads()).items():
            for word in [*PRIVATE_WORDS, "PRIVATE-LOG"]:
                assert word not in text_of(text) and word not in text, (moment, where, word)
        if moment == "before the reveal":
            revealed = await client.post("/api/v1/competition/reveal", headers=admin.auth)
            assert revealed.status_code == 200, revealed.text
