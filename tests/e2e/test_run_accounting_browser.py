"""What runs cost, in Chromium: the admin's batch page and full log, the team's results."""

from playwright.async_api import expect

from tests.fixtures.accounting import TIMES, public_runs_recorded
from tests.fixtures.browser import collect_script_errors, log_in


async def test_admin_and_team_read_what_runs_cost(
    client, teams, settings, live_server, browser, artifacts
):
    admin, team, submission_id, public_batch, _, claimed = await public_runs_recorded(
        client, teams, settings
    )
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)

    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.goto(f"{live_server}/admin/batches/{public_batch}")
    cost = page.locator("#batch-cost")
    await expect(cost).to_contain_text("peak of peaks 212 MiB of 512 MiB")
    await expect(cost.locator("meter.peak")).to_be_visible()
    runs_table = page.locator("#batch-live table")
    await expect(runs_table).to_contain_text(f"CPU 1.84 s of 20 s {TIMES} 1 CPU")
    await expect(runs_table).to_contain_text("killed by signal 9 (SIGKILL)")
    await page.screenshot(path=str(artifacts / "accounting-admin-batch.png"), full_page=True)

    await page.locator(f'a[href="/admin/runs/{claimed[11].id}/log"]').click()
    await page.wait_for_url(f"**/admin/runs/{claimed[11].id}/log")
    await expect(page.locator("pre.run-log mark.cut")).to_be_visible()
    await expect(page.locator("pre.run-log")).to_contain_text("<script>alert('x')</script>")
    # The picture shows the cut: the end of the kept head, the marker, the kept tail.
    await page.locator("pre.run-log mark.cut").scroll_into_view_if_needed()
    await page.screenshot(path=str(artifacts / "accounting-run-log.png"))
    await page.get_by_role("button", name="Log out").click()

    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    await page.goto(f"{live_server}/submissions/{submission_id}")
    results = page.locator("#results")
    await expect(results).to_contain_text("output 1.2 MiB, cut to 64 KiB")
    await expect(results).to_contain_text("exit code 1")
    await results.screenshot(path=str(artifacts / "accounting-team-results.png"))
    assert errors == [], errors
    await context.close()


async def test_a_long_unbroken_team_name_keeps_the_batch_page_and_run_log_within_the_screen(
    client, teams, settings, live_server, browser, artifacts
):
    # Team names may be 100 characters without a space; the name wraps, the columns stay.
    admin, _, _, public_batch, _, claimed = await public_runs_recorded(
        client, teams, settings, team_name="W" * 100
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    for path in (f"/admin/batches/{public_batch}", f"/admin/runs/{claimed[11].id}/log"):
        await page.goto(f"{live_server}{path}")
        await expect(page.get_by_text("W" * 100).first).to_be_visible()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0, f"{path} scrolls {overflow} px sideways"
    await page.goto(f"{live_server}/admin/batches/{public_batch}")
    await page.screenshot(path=str(artifacts / "accounting-long-team-name.png"), full_page=True)
    await context.close()
