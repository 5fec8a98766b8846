"""A team watches its LLM usage page fill in while its code calls the gateway."""

import httpx
from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.services import room_in_the_minute


async def test_usage_page_shows_the_chart_and_updates_itself(
    live_server, teams, browser, artifacts, services
):
    team = await teams.create(name="Team Usage")
    # Every call below, the last one after the page loads, must land in one minute.
    room_in_the_minute(services.redis_url, seconds_needed=40)
    chat = {"model": "echo", "messages": [{"role": "user", "content": "plan a tour please"}]}
    async with httpx.AsyncClient(base_url=live_server, headers=team.auth) as api:
        statuses = [
            (await api.post("/llm/v1/chat/completions", json=chat)).status_code for _ in range(12)
        ]
    assert statuses == [200] * 10 + [429] * 2

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    await page.get_by_role("link", name="LLM usage").click()
    totals = page.locator(".usage-totals")
    await expect(totals.locator("div", has_text="Calls").locator("dd").first).to_have_text("12")
    await expect(totals.locator("div", has_text="Exceeded rate").locator("dd")).to_have_text(
        "16.7 %"
    )
    chart = page.locator(".usage-chart svg")
    await expect(chart).to_be_visible()
    assert await chart.locator("rect.refused").count() >= 1
    await page.screenshot(path=str(artifacts / "usage-team.png"), full_page=True)

    # The page polls: a refused call made now shows up without a reload.
    async with httpx.AsyncClient(base_url=live_server, headers=team.auth) as api:
        assert (await api.post("/llm/v1/chat/completions", json=chat)).status_code == 429
    await expect(totals.locator("div", has_text="Calls").locator("dd").first).to_have_text(
        "13", timeout=15_000
    )
    assert errors == [], errors
    await context.close()
