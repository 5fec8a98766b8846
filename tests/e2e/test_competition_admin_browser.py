"""An organizer runs the competition from /admin/competition in a real browser: ends it,
starts the final evaluation, watches it finish on a real worker and reveals the results;
the header counts down by itself on every page."""

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from portal.teams.models import Role
from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.competition import configure
from tests.fixtures.evaluation import example, running_eval_worker, upload
from tests.fixtures.factories import TeamFactory


def local_input(moment: datetime) -> str:
    # The live portal's competition timezone is UTC (the default).
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


async def test_admin_ends_the_competition_runs_the_final_and_reveals_it(
    app, client, live_server, browser, eval_settings, artifacts
):
    factory = TeamFactory(app.state.sessionmaker)
    admin = await factory.create(name="Organizers", email="admin@example.org", role=Role.admin)
    alpha = await factory.create(name="Team Alpha", email="alpha@example.org")
    for team, file in (
        (alpha, "tsp_two_opt.py"),
        (await factory.create(name="Team Beta", email="beta@example.org"), "tsp_input_order.py"),
    ):
        await upload(client, team, file, example(file))
    now = datetime.now(UTC)
    await configure(
        client,
        admin,
        name="Spring Cup",
        starts_at=(now - timedelta(hours=2)).isoformat(),
        freeze_at=(now + timedelta(hours=20)).isoformat(),
        ends_at=(now + timedelta(days=2, hours=3)).isoformat(),
        public_seeds=[1, 2],
        private_seeds=[11, 12],
    )

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)

    # A team's dashboard: the phase and a countdown that ticks without a reload.
    await log_in(page, live_server, alpha.email, alpha.token, r"/dashboard$")
    badge = page.locator("header .phase-clock")
    await expect(badge).to_contain_text(re.compile(r"Open · freezes in 19 h \d+ min"))
    left = badge.locator("time")
    await expect(left).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    await page.get_by_role("button", name="Log out").click()

    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.get_by_role("link", name="Competition", exact=True).click()
    await page.wait_for_url(re.compile(r"/admin/competition$"))
    await expect(page.locator(".phase-step.current")).to_contain_text("Open")
    await expect(page.get_by_text("every upload again on the new seeds")).to_be_visible()
    await expect(page.get_by_role("button", name="Start final evaluation")).to_be_disabled()
    await page.screenshot(path=str(artifacts / "competition-open.png"), full_page=True)
    await page.locator("header").screenshot(path=str(artifacts / "header-open.png"))

    # Ending the competition from the form: the end moves to a minute ago.
    await page.get_by_label("Freeze").fill("")
    await page.get_by_label("End", exact=True).fill(local_input(now - timedelta(minutes=1)))
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text("Settings saved.")).to_be_visible()
    await expect(badge).to_have_text("Ended")
    await expect(page.locator(".phase-step.current")).to_contain_text("Ended")
    start = page.get_by_role("button", name="Start final evaluation")
    await expect(start).to_be_enabled()
    await page.screenshot(path=str(artifacts / "competition-ended.png"), full_page=True)

    # No worker yet: the final evaluation's runs wait, the bar shows them live.
    await start.click()
    await expect(page.get_by_text("Final evaluation started")).to_be_visible()
    await expect(page.locator("#final-done")).to_have_text(re.compile(r"0 of \d+ runs done"))
    await expect(page.get_by_role("button", name="Reveal results")).to_be_disabled()
    await expect(badge).to_have_text("Final evaluation")
    await page.screenshot(path=str(artifacts / "competition-final-running.png"), full_page=True)

    with running_eval_worker(eval_settings):
        # The live region polls until every run is done, then enables the reveal.
        reveal = page.get_by_role("button", name="Reveal results")
        await expect(reveal).to_be_enabled(timeout=240_000)
    assert await page.locator("#final-live[hx-trigger]").count() == 0
    await reveal.click()
    await expect(page.get_by_text("Reveal the final results now?")).to_be_visible()
    await page.get_by_role("button", name="Yes, reveal the results").click()
    await expect(page.get_by_text("Results revealed: the final board is public.")).to_be_visible()
    await expect(badge).to_have_text("Results revealed")
    await expect(page.locator(".phase-step.current")).to_contain_text("Revealed")
    await page.screenshot(path=str(artifacts / "competition-revealed.png"), full_page=True)
    assert errors == [], errors
    await context.close()


async def test_the_header_counts_down_every_second_and_moves_to_the_next_phase(
    app, client, live_server, browser, artifacts
):
    factory = TeamFactory(app.state.sessionmaker)
    team = await factory.create(name="Team Alpha", email="alpha@example.org")
    now = datetime.now(UTC)
    await configure(
        client,
        await factory.admin(),
        starts_at=(now - timedelta(hours=1)).isoformat(),
        freeze_at=(now + timedelta(seconds=40)).isoformat(),
        ends_at=(now + timedelta(days=3, hours=4, minutes=30)).isoformat(),
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 700})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    badge = page.locator("header .phase-clock")
    await expect(badge).to_contain_text(re.compile(r"^\s*Open · freezes in \d+ s\s*$"))
    await page.evaluate("window.stillTheSamePage = true")
    first = await badge.locator("time").text_content()
    await expect(badge.locator("time")).not_to_have_text(first or "")
    await page.locator("header").screenshot(path=str(artifacts / "header-dashboard.png"))
    await page.screenshot(path=str(artifacts / "dashboard-header.png"))
    # When the freeze passes, the badge moves on by itself: no reload, no request.
    await expect(badge).to_contain_text(re.compile(r"Frozen · ends in 3 d 4 h"), timeout=60_000)
    await expect(badge).to_have_attribute("data-phase", "frozen")
    assert await page.evaluate("window.stillTheSamePage === true")
    assert errors == [], errors
    await context.close()
