"""A demo team and the admin log in with a real browser; screenshots go to test-artifacts/."""

import re

from playwright.async_api import expect

from portal.teams.models import Role
from tests.fixtures.browser import collect_script_errors
from tests.fixtures.factories import TeamFactory


async def _make_accounts(app):
    # The live server is another process; the factory writes through the test's own app.
    factory = TeamFactory(app.state.sessionmaker)
    team = await factory.create(name="Team Alpha", email="alpha@example.org")
    admin = await factory.create(name="Organizers", email="admin@example.org", role=Role.admin)
    for number in range(3):
        await factory.create(name=f"Demo Team {number}", email=f"demo{number}@example.org")
    return team, admin


async def _log_in(page, base_url: str, email: str, token: str) -> None:
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Log in").click()


async def test_team_and_admin_log_in_in_chromium(app, live_server, browser, artifacts):
    team, admin = await _make_accounts(app)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors = collect_script_errors(page)

    await _log_in(page, live_server, team.email, "pt_wrong-token")
    await expect(page.get_by_role("alert")).to_contain_text("Email or API token is not correct")

    await _log_in(page, live_server, team.email, team.token)
    await page.wait_for_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", name="Team Alpha")).to_be_visible()
    await expect(page.get_by_role("status").first).to_contain_text("Logged in as Team Alpha")
    await page.screenshot(path=str(artifacts / "dashboard-team.png"), full_page=True)
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r"/login$"))

    await _log_in(page, live_server, admin.email, admin.token)
    await page.wait_for_url(re.compile(r"/admin/teams$"))
    await expect(page.get_by_role("cell", name="Demo Team 2", exact=True)).to_be_visible()
    # Live search (HTMX) narrows the table without a page load.
    await page.get_by_label("Search").fill("demo team 1")
    await expect(page.locator("#team-table tbody tr")).to_have_count(1)
    await expect(page.get_by_role("cell", name="Demo Team 1", exact=True)).to_be_visible()
    await page.get_by_label("Search").fill("")
    await expect(page.locator("#team-table tbody tr")).to_have_count(5)
    await page.screenshot(path=str(artifacts / "admin-teams.png"), full_page=True)

    await page.goto(f"{live_server}/admin/audit")
    await expect(page.get_by_role("cell", name="auth.login_failed")).to_be_visible()
    await page.screenshot(path=str(artifacts / "admin-audit.png"), full_page=True)
    assert errors == [], errors  # no CSP violations or script errors
    await context.close()


async def test_admin_creates_a_team_in_the_browser_and_sees_its_token_once(
    app, live_server, browser, artifacts
):
    _, admin = await _make_accounts(app)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await _log_in(page, live_server, admin.email, admin.token)
    await page.wait_for_url(re.compile(r"/admin/teams$"))
    await page.get_by_label("Name").fill("Browser Team")
    await page.locator("#new-email").fill("browser@example.org")
    await page.get_by_role("button", name="Create team").click()
    token = await page.locator("#issued-token").inner_text()
    assert token.startswith("pt_")
    await page.screenshot(path=str(artifacts / "admin-team-created.png"), full_page=True)
    await page.goto(f"{live_server}/admin/teams")
    await expect(page.get_by_role("cell", name="Browser Team", exact=True)).to_be_visible()
    assert token not in await page.content()
    await context.close()


async def test_api_docs_render_offline_with_the_strict_script_policy(live_server, browser):
    page = await browser.new_page()
    errors = collect_script_errors(page)
    await page.goto(f"{live_server}/docs")
    await expect(page.get_by_text("/api/v1/auth/login").first).to_be_visible()
    assert errors == [], errors
    await page.close()
