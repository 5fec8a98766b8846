"""An organizer runs a batch from the dashboard and watches it; a team reads its results."""

import re

from playwright.async_api import expect

from portal.teams.models import Role
from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.evaluation import example, upload
from tests.fixtures.factories import TeamFactory


async def test_admin_runs_a_batch_and_watches_it_finish(
    app, client, live_server, browser, eval_worker, artifacts
):
    factory = TeamFactory(app.state.sessionmaker)
    admin = await factory.create(name="Organizers", email="admin@example.org", role=Role.admin)
    alpha = await factory.create(name="Team Alpha", email="alpha@example.org")
    for name, file in (
        ("Team Beta", "tsp_nearest_neighbour.py"),
        ("Team Gamma", "tsp_input_order.py"),
    ):
        team = await factory.create(name=name, email=f"{name.split()[1].lower()}@example.org")
        await upload(client, team, file, example(file))
    alpha_submission = await upload(client, alpha, "tsp_two_opt.py", example("tsp_two_opt.py"))

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.get_by_role("link", name="Batches").click()
    await page.get_by_label("Name").fill("Round 1")
    await page.get_by_label("Seeds").fill("1-4")
    await page.get_by_role("button", name="Create batch").click()
    await page.wait_for_url(re.compile(r"/admin/batches/\d+$"))
    # The live region polls until the batch is done, then stops.
    await expect(page.locator("#batch-live .status-batch-finished")).to_be_visible(timeout=90_000)
    await expect(page.get_by_text("12 of 12 runs done")).to_be_visible()
    await expect(page.locator("progress.batch-progress")).to_have_attribute("value", "12")
    await page.screenshot(path=str(artifacts / "admin-batch.png"), full_page=True)
    assert await page.locator("#batch-live[hx-trigger]").count() == 0
    await page.get_by_role("button", name="Log out").click()

    await log_in(page, live_server, alpha.email, alpha.token, r"/dashboard$")
    await page.goto(f"{live_server}/submissions/{alpha_submission}")
    # An admin's batch is the organizers' view: the team's page shows only its public
    # evaluation (none here: no public seeds are set), never the batch or its runs.
    results = page.locator("#results")
    await expect(results).to_be_visible()
    assert await page.get_by_text("Round 1").count() == 0
    assert await results.locator(".status-scored").count() == 0
    await page.screenshot(path=str(artifacts / "submission-results.png"), full_page=True)
    assert errors == [], errors
    await context.close()
