"""The admin System page and GET /api/v1/system: queue, workers, runs per minute,
failures and refusals, over real PostgreSQL and Redis."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from portal.core.time import utcnow
from portal.evaluation import workers
from tests.fixtures.clients import make_client
from tests.fixtures.competition import set_clock
from tests.fixtures.factories import browser_login
from tests.fixtures.system import (
    SeededRun,
    beat,
    registry,
    seed_gateway_calls,
    seed_runs,
    write_entry,
)

STALE = 30  # PORTAL_EVAL_STALE_AFTER_SECONDS's default, as the test settings keep it
NO_WORKER = "No worker has reported in the last 30 s — runs will wait."


def tiles(page: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]+)</dd>", page))


def now_to_the_second() -> datetime:
    return utcnow().replace(microsecond=0)


async def system_page(app, admin, headers: dict[str, str] | None = None):
    async with make_client(app) as browser:
        await browser_login(browser, admin)
        return await browser.get("/admin/system", headers=headers or {})


async def test_admin_sees_queue_counts_that_match_the_seeded_runs(app, client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Ants")
    now = now_to_the_second()
    set_clock(app, now)
    seed_runs(
        services,
        [
            SeededRun("Ants", "queued", "public", queued_at=now - timedelta(minutes=7)),
            SeededRun("Ants", "queued", "public", queued_at=now - timedelta(minutes=1)),
            SeededRun("Ants", "queued", "public", queued_at=now - timedelta(minutes=2)),
            SeededRun("Ants", "running", "public", started_at=now - timedelta(seconds=5)),
            SeededRun("Ants", "queued", "final", queued_at=now - timedelta(minutes=3)),
            SeededRun("Ants", "queued", "final", queued_at=now - timedelta(minutes=3)),
            *[SeededRun("Ants", "queued", "adhoc", queued_at=now) for _ in range(4)],
            SeededRun("Ants", "scored", "adhoc", finished_at=now - timedelta(minutes=1)),
            SeededRun("Ants", "cancelled", "adhoc", finished_at=now - timedelta(minutes=1)),
        ],
    )

    figures = (await client.get("/api/v1/system", headers=admin.auth)).json()
    assert figures["queue"] == {
        "queued": {"public": 3, "final": 2, "adhoc": 4},
        "queued_total": 9,
        "running": 1,
        "oldest_queued_at": (now - timedelta(minutes=7)).isoformat().replace("+00:00", "Z"),
        "oldest_queued_seconds": 420.0,
    }
    assert figures["inventory"]["runs"] == 12
    assert figures["inventory"]["participants"] == 1 and figures["inventory"]["admins"] == 1

    page = await system_page(app, admin)
    assert page.status_code == 200
    shown = tiles(page.text)
    assert shown["Queued: uploads (public)"] == "3"
    assert shown["Queued: final evaluation"] == "2"
    assert shown["Queued: admin batches"] == "4"
    assert shown["Running"] == "1"
    assert shown["Oldest queued run waited"] == "7 min"
    assert shown["Finished, last hour"] == "1"  # the cancelled run did no work
    assert 'href="/admin/system" aria-current="page">System</a>' in page.text
    assert "<dt>Runs</dt><dd>12</dd>" in page.text


async def test_a_beating_worker_is_alive_with_its_run_then_stale_once_its_beat_ages(
    app, teams, services
):
    admin = await teams.admin()
    await teams.create(name="Bees")
    now = now_to_the_second()
    worker_id = "eval-host-1:4242:abc123"
    beat(services, worker_id, started_at=now - timedelta(hours=2), threads=3)
    batches = seed_runs(
        services,
        [SeededRun("Bees", "running", "public", started_at=now, worker_id=worker_id)],
    )

    redis = registry(services)
    try:
        (registered,) = workers.known_workers(redis)
    finally:
        redis.close()
    set_clock(app, registered.beat_at + timedelta(seconds=4))
    page = (await system_page(app, admin)).text
    row = page[page.index(worker_id) :]
    row = row[: row.index("</tr>")]
    assert '<span class="status status-alive">alive</span>' in row
    assert "<td>4 s ago</td>" in row  # the last beat, humanised
    assert "2 h ago" in row
    assert f'<a href="/admin/batches/{batches["public"]}">#{batches["public"]}</a> Bees' in row
    assert NO_WORKER not in page

    # No beat for longer than PORTAL_EVAL_STALE_AFTER_SECONDS: stale, and the run it
    # holds is unattended until the watchdog takes it back.
    set_clock(app, registered.beat_at + timedelta(seconds=STALE + 1))
    page = (await system_page(app, admin)).text
    row = page[page.index(worker_id) :]
    assert '<span class="status status-stale">stale</span>' in row[: row.index("</tr>")]
    assert NO_WORKER in page
    assert "1 run marked running with no live worker" in page


async def test_no_worker_at_all_says_runs_will_wait(app, client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Cats")
    seed_runs(services, [SeededRun("Cats", "queued", "public")])
    page = (await system_page(app, admin)).text
    assert NO_WORKER in page
    assert "1 queued." in page
    assert "No worker is registered." in page
    figures = (await client.get("/api/v1/system", headers=admin.auth)).json()
    assert (figures["workers"], figures["workers_alive"]) == ([], 0)


async def test_hostile_registry_entries_never_break_the_page(app, client, teams, services):
    admin = await teams.admin()
    now = datetime.now(UTC)
    long_host = "h" * 5000
    long_id = "w" * 3000
    write_entry(
        services,
        long_id,
        {
            "host": long_host,
            "pid": 7,
            "threads": 2,
            "runner": "<script>alert(1)</script>",
            "started_at": now.isoformat(),
            "beat_at": now.isoformat(),
        },
    )
    write_entry(services, "not-json", b"\xff\xfe garbage")
    write_entry(services, b"\xff\xfenot-utf8", {"host": "x"})
    write_entry(
        services,
        "naive-times",
        {"host": "x", "pid": 1, "threads": 1, "runner": "docker",
         "started_at": "2025-01-01T00:00:00", "beat_at": "2025-01-01T00:00:00"},
    )  # fmt: skip
    write_entry(services, "a-list", "[1, 2, 3]")

    page = await system_page(app, admin)
    assert page.status_code == 200
    # The readable entry is shown, its long names cut (whole in the title), escaped.
    assert f'title="{long_id}"' in page.text
    assert long_host[:37] + "..." in page.text
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert "naive-times" not in page.text and "not-json" not in page.text
    figures = (await client.get("/api/v1/system", headers=admin.auth)).json()
    assert [worker["worker_id"] for worker in figures["workers"]] == [long_id]
    # What the portal cannot read is dropped from the registry, not kept forever.
    redis = registry(services)
    try:
        assert redis.hkeys(workers.WORKERS_KEY) == [long_id.encode()]
        # A key of another type where the registry belongs: the page says what to do.
        redis.delete(workers.WORKERS_KEY)
        redis.set(workers.WORKERS_KEY, "something else")
        page = await system_page(app, admin)
        assert page.status_code == 200
        assert "holds a string, not the workers&#39; hash" in page.text
        assert "Delete the key" in page.text
    finally:
        redis.close()


async def test_runs_finished_per_minute_and_the_latest_failures_link_to_their_batch(
    app, client, teams, services
):
    admin = await teams.admin()
    await teams.create(name="Dogs")
    now = now_to_the_second().replace(second=30)
    set_clock(app, now)
    minute = now.replace(second=0)
    batches = seed_runs(
        services,
        [
            SeededRun("Dogs", "scored", finished_at=minute - timedelta(minutes=2)),
            SeededRun("Dogs", "scored", finished_at=minute - timedelta(minutes=2, seconds=-10)),
            SeededRun("Dogs", "timeout", finished_at=minute - timedelta(minutes=2),
                      reason="Ran longer than 20 s."),
            SeededRun("Dogs", "failed", finished_at=minute + timedelta(seconds=5),
                      reason="Exited with code 1: <b>ZeroDivisionError</b>"),
            SeededRun("Dogs", "memory_limit", finished_at=minute - timedelta(minutes=90),
                      reason="Used more than 512 MiB."),
            SeededRun("Dogs", "cancelled", finished_at=minute),
        ],
        batch_name="Round & 1",
    )  # fmt: skip

    figures = (await client.get("/api/v1/system", headers=admin.auth)).json()
    finished = figures["finished"]
    assert len(finished["series"]) == 60
    assert finished["totals"]["scored"] == 2 and finished["totals"]["timeout"] == 1
    assert finished["totals"]["failed"] == 1 and finished["totals"]["memory_limit"] == 0
    assert finished["series"][-3]["counts"] == {"scored": 2, "timeout": 1}
    assert finished["series"][-1]["counts"] == {"failed": 1}
    # Newest first, older than the chart's hour included, cancelled runs are no failure.
    assert [run["status"] for run in figures["failures"]] == ["failed", "timeout", "memory_limit"]

    page = (await system_page(app, admin)).text
    failures = page[page.index("Recent failures") :]
    assert f'<a href="/admin/batches/{batches["adhoc"]}">#{batches["adhoc"]} Round &amp; 1</a>' in (
        failures
    )
    assert "Exited with code 1: &lt;b&gt;ZeroDivisionError&lt;/b&gt;" in failures
    assert "25 s ago" in failures  # the failure at hh:mm:05, seen at hh:mm:30
    chart = page[page.index("Runs finished per minute") : page.index("Recent failures")]
    assert chart.count('<rect class="scored"') == 1 and chart.count('<rect class="timeout"') == 1


async def test_refusals_count_the_gateways_last_hour_and_refused_uploads(
    app, client, teams, services
):
    admin, team = await teams.admin(), await teams.create(name="Eels")
    now = now_to_the_second()
    set_clock(app, now)
    seed_gateway_calls(
        services, "Eels", now - timedelta(minutes=5), allowed=6, refused=2, refused_by="tokens"
    )
    seed_gateway_calls(services, "Eels", now, allowed=0, refused=2, refused_by="parallel")
    seed_gateway_calls(services, "Eels", now - timedelta(hours=2), allowed=0, refused=9)
    broken = await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": ("broken.py", b"def (:\n", "text/x-python")},
    )
    assert broken.status_code == 422

    refusals = (await client.get("/api/v1/system", headers=admin.auth)).json()["refusals"]
    assert refusals["llm"]["calls"] == 10 and refusals["llm"]["refused"] == 4
    assert refusals["llm"]["exceeded_rate"] == 0.4
    assert refusals["llm"]["refused_last_minute"] == 2
    assert refusals["llm"]["refused_by"] == {"requests": 0, "tokens": 2, "parallel": 2, "model": 0}
    assert refusals["uploads"] == {"refused": 1, "by_reason": {"syntax_error": 1}}

    page = (await system_page(app, admin)).text
    shown = tiles(page)
    assert shown["LLM calls refused"] == "4" and shown["Exceeded rate"] == "40.0 %"
    assert "LLM calls refused, by budget: tokens 2, calls in flight 2" in " ".join(page.split())
    assert shown["Uploads refused"] == "1"


async def test_participants_and_visitors_are_refused(app, client, teams):
    team = await teams.create()
    assert (await client.get("/api/v1/system")).status_code == 401
    refused = await client.get("/api/v1/system", headers=team.auth)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    async with make_client(app) as browser:
        await browser_login(browser, team)
        page = await browser.get("/admin/system")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert 'href="/admin/system"' not in (await browser.get("/dashboard")).text
    async with make_client(app) as visitor:
        assert (await visitor.get("/admin/system")).status_code == 303


async def test_the_htmx_poll_gets_only_the_live_part(app, teams, services):
    admin = await teams.admin()
    page = await system_page(app, admin, headers={"HX-Request": "true"})
    assert page.status_code == 200
    assert page.text.lstrip().startswith('<div id="system-live"')
    assert 'hx-trigger="every 5s"' in page.text and 'hx-swap="outerHTML"' in page.text
    assert "<html" not in page.text
    assert "In the database" not in page.text  # the row counts come with the page only
    assert "HX-Request" in page.headers["vary"]
    assert html.unescape(NO_WORKER) in html.unescape(page.text)
