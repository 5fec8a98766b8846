"""An organizer opens the System page during an event and watches a worker report in."""

from datetime import timedelta

from playwright.async_api import expect

from portal.core.time import utcnow
from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.system import SeededRun, beat, seed_gateway_calls, seed_runs, write_entry


async def test_system_page_shows_the_queue_workers_and_failures_and_updates_itself(
    live_server, teams, browser, artifacts, services
):
    admin = await teams.admin(name="Organizers")
    await teams.create(name="Team Ant")
    await teams.create(name="Team with a name long enough to wrap twice on a narrow screen")
    now = utcnow()
    minute = now.replace(second=0, microsecond=0)
    finished = [
        SeededRun("Team Ant", "scored", finished_at=minute - timedelta(minutes=n, seconds=-s))
        for n in range(0, 40, 3)
        for s in range(0, 50, 17 if n % 2 else 9)
    ]
    batches = seed_runs(
        services,
        [
            *finished,
            SeededRun("Team Ant", "timeout", finished_at=minute - timedelta(minutes=4),
                      reason="Ran longer than 20 s, the time limit; it was stopped."),
            SeededRun("Team with a name long enough to wrap twice on a narrow screen", "failed",
                      finished_at=minute - timedelta(minutes=1),
                      reason="Exited with code 1. Last lines:\nTraceback (most recent call last):"
                             "\n  File \"solution.py\", line 3\nZeroDivisionError: division by zero"),
            SeededRun("Team Ant", "memory_limit", finished_at=minute - timedelta(minutes=12),
                      reason="Used more than 512 MiB of memory."),
        ],
        batch_name="Round 1",
    )  # fmt: skip
    seed_runs(
        services,
        [
            *[SeededRun("Team Ant", "queued", "public", queued_at=now - timedelta(minutes=3))] * 5,
            SeededRun("Team Ant", "running", "public", started_at=now, worker_id="eval-1:101:a1"),
        ],
    )
    seed_gateway_calls(services, "Team Ant", now - timedelta(minutes=6), allowed=8, refused=0)
    seed_gateway_calls(services, "Team Ant", now - timedelta(minutes=2), allowed=10, refused=4)
    beat(services, "eval-1:101:a1", started_at=now - timedelta(hours=1, minutes=12), threads=2)
    # A stale worker from a host with a very long name, and an entry nobody can read.
    stale_at = (now - timedelta(minutes=3)).isoformat()
    write_entry(
        services,
        "evaluation-worker-on-a-host-with-a-really-long-kubernetes-pod-name-7f9c8d6b5-x2k4q:7:ff",
        {"host": "evaluation-worker-on-a-host-with-a-really-long-kubernetes-pod-name-7f9c8d6b5-x2k4q",
         "pid": 7, "threads": 4, "runner": "docker", "started_at": stale_at, "beat_at": stale_at},
    )  # fmt: skip
    write_entry(services, "junk", "not json at all")

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.get_by_role("link", name="System").click()
    await expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible()

    live = page.locator("#system-live")
    await expect(
        live.locator(".tiles div", has_text="uploads (public)").locator("dd")
    ).to_have_text("5")
    await expect(live.locator(".status-alive")).to_have_count(1)
    await expect(live.locator(".status-stale")).to_have_count(1)
    await expect(
        live.get_by_role("link", name=f"#{batches['adhoc']} Round 1").first
    ).to_be_visible()
    await expect(live.locator("svg rect.scored").first).to_be_visible()
    await expect(live.locator("svg rect.refused")).to_have_count(1)
    await page.screenshot(path=str(artifacts / "admin-system.png"), full_page=True)

    # The page refreshes itself: a second worker reporting in shows up without a reload.
    beat(services, "eval-1:101:a1", started_at=now - timedelta(hours=1, minutes=12), threads=2)
    beat(services, "eval-2:202:b2", started_at=utcnow(), threads=2)
    await expect(live.locator(".status-alive")).to_have_count(2, timeout=15_000)
    assert errors == [], errors

    # Narrow screens: the page itself never scrolls sideways.
    await page.set_viewport_size({"width": 390, "height": 900})
    await page.reload()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await page.screenshot(path=str(artifacts / "admin-system-narrow.png"), full_page=True)
    await context.close()
