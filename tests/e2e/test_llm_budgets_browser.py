"""An organizer sets a team's LLM budgets through the limits form; the team's code calls
the gateway; the usage pages show each budget's use, at desktop and phone widths, with a
100-character team name."""

import re

import httpx
from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, covered_controls, log_in, sideways_scroll
from tests.fixtures.services import room_in_the_minute

LONG_NAME = "W" * 100
WIDTHS = (1280, 390)


async def looks_right(page, what: str, artifacts, shot: str) -> None:
    """At each width: the page never scrolls sideways, every control can be clicked."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.reload()
        assert await sideways_scroll(page) == 0, f"{what} scrolls sideways at {width} px"
        assert await covered_controls(page) == [], f"{what} at {width} px"
        await page.screenshot(path=str(artifacts / f"{shot}-{width}.png"), full_page=True)


def budget(page, label: str):
    return page.locator(".budget-use div", has=page.locator("dt", has_text=label)).locator(
        ".budget-figure"
    )


async def test_limits_set_in_the_form_hold_the_team_and_its_usage_page_shows_them(
    live_server, teams, browser, artifacts, services
):
    admin, team = await teams.admin(name="Organizers"), await teams.create(name=LONG_NAME)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.get_by_role("link", name=re.compile(f"^LLM limits of {LONG_NAME}")).click()
    await page.get_by_label("Requests per minute").fill("4")
    await page.get_by_label("Tokens per minute").fill("50,000")
    await page.get_by_label("Calls in flight at once").fill("2")
    await page.get_by_label("Models the team may call").fill("echo, gpt-4o-mini")
    await page.get_by_role("button", name="Save limits").click()
    await expect(page.get_by_text(f"{LONG_NAME}: LLM limits saved.")).to_be_visible()
    summary = page.get_by_role("link", name=re.compile(f"^LLM limits of {LONG_NAME}"))
    await expect(summary).to_have_text(re.compile(r"4/min\s*custom\s*50k tok/min"))

    # The team's code: four calls fit its minute, the fifth is refused, and a model
    # outside its list is not found.
    room_in_the_minute(services.redis_url, seconds_needed=40)
    chat = {"model": "echo", "messages": [{"role": "user", "content": "plan a tour please"}]}
    async with httpx.AsyncClient(base_url=live_server, headers=team.auth) as api:
        statuses = [
            (await api.post("/llm/v1/chat/completions", json=chat)).status_code for _ in range(5)
        ]
        other = await api.post("/llm/v1/chat/completions", json={**chat, "model": "gpt-5"})
    assert statuses == [200] * 4 + [429] and other.status_code == 404

    await page.goto(f"{live_server}/admin/teams/{team.id}/llm-limit")
    await expect(budget(page, "Requests this minute")).to_have_text("4 / 4")
    await expect(page.locator("#l-tokens_per_minute")).to_have_value("50,000")
    await expect(page.locator(".limit-changes")).to_contain_text(
        "Calls in flight at once: default → 2"
    )
    await looks_right(page, "the limits page", artifacts, "llm-limits")
    await page.goto(f"{live_server}/admin/usage")
    row = page.locator("table.usage-teams tr", has_text=LONG_NAME)
    await expect(row.locator(".refused-by")).to_have_text(re.compile(r"requests 1\s*model 1"))
    await looks_right(page, "the admin usage page", artifacts, "llm-admin-usage")
    assert errors == [], errors
    await context.close()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    await page.get_by_role("link", name="LLM usage").click()
    await expect(budget(page, "Requests this minute")).to_have_text("4 / 4")
    await expect(budget(page, "Calls in flight")).to_have_text("0 / 2")
    await expect(page.locator(".models-allowed li")).to_have_text(["echo", "gpt-4o-mini"])
    rates = page.locator(".refusal-rates")
    for label, shown in (("Requests per minute", "16.7 %"), ("Model not allowed", "16.7 %")):
        await expect(rates.locator("div", has_text=label).locator("dd")).to_contain_text(shown)
    await expect(
        page.locator(".usage-totals div", has_text="Exceeded rate").locator("dd")
    ).to_have_text("33.3 %")
    await looks_right(page, "the team's usage page", artifacts, "llm-team-usage")
    assert errors == [], errors
    await context.close()
