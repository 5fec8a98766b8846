"""Every public state a dashboard row can be in, as a participant sees it."""

import re

from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.factories import TeamFactory
from tests.fixtures.public_results import Entry, Run, seed_public_batch, set_public_status

CRASH = "Exited with code 3. Last log lines:\nTraceback (most recent call last):\nValueError: boom"


async def test_rows_in_every_public_state_and_a_queued_one_settling_by_itself(
    app, services, live_server, browser, artifacts
):
    team = await TeamFactory(app.state.sessionmaker).create(name="Team States")
    queued, running, scored, failed, timed_out = seed_public_batch(
        services,
        "Team States",
        [
            Entry("tsp_nearest_neighbour_then_2opt_v3.py", [Run("queued"), Run("queued")]),
            Entry("running.py", [Run("scored", 3.5), Run("running")]),
            Entry("scored.py", [Run("scored", 3.9), Run("scored", 4.1)]),
            Entry("crash.py", [Run("failed", reason=CRASH), Run("failed", reason=CRASH)]),
            Entry(
                "slow.py",
                [
                    Run("scored", 3.0),
                    Run("timeout", reason="Timed out: still running after 10 s, the limit."),
                ],
            ),
        ],
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    await page.evaluate("window.sameDocument = true")
    rows = {
        sid: page.locator(f"#submission-{sid}")
        for sid in (queued, running, scored, failed, timed_out)
    }
    await expect(rows[queued].locator(".status")).to_have_text("queued")
    await expect(rows[running].locator(".status")).to_have_text("running")
    await expect(rows[scored].locator("a.score")).to_have_text("4.0000")
    await expect(rows[failed]).to_contain_text("Exited with code 3.")
    await expect(rows[timed_out]).to_contain_text(
        "Timed out: still running after 10 s, the limit. (1 of 2 seeds)"
    )
    await page.screenshot(path=str(artifacts / "dashboard-every-state.png"), full_page=True)

    set_public_status(services, queued, Entry("x", [Run("scored", 2.25)]))
    await expect(rows[queued].locator("a.score")).to_have_text("2.2500")
    await expect(rows[queued]).not_to_have_attribute("hx-trigger", re.compile("."))
    assert await page.evaluate("window.sameDocument === true")
    assert errors == [], errors
    await context.close()
