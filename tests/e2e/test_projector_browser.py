"""The projector view in a real browser at two screen sizes; screenshots are looked at."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.fixtures.leaderboard import seed_final_scores, seed_public_scores, set_competition


@pytest.mark.parametrize("width,height", [(1920, 1080), (1280, 720)])
async def test_projector_is_large_chrome_free_and_pages_itself(
    teams, services, live_server, browser, artifacts, width, height
):
    names = [f"Team {chr(65 + n)}{n}" for n in range(26)]  # two pages of 20
    for name in names:
        await teams.create(name=name)
    now = datetime.now(UTC)
    ids = seed_public_scores(
        services,
        {name: [(1.0 + n / 10, now - timedelta(minutes=60 - n))] for n, name in enumerate(names)},
    )
    set_competition(services, ends_at=now - timedelta(minutes=1))
    # The final turns the public order upside down.
    seed_final_scores(services, {ids[name][0]: 3.0 - n / 10 for n, name in enumerate(names)})
    set_competition(services, revealed_at=now)
    page = await browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{live_server}/leaderboard/projector")
    await expect(page.get_by_role("heading", name="Competition")).to_be_visible()
    await expect(page.get_by_text("Final results")).to_be_visible()
    assert await page.locator("nav").count() == 0  # no chrome
    first_row = page.locator("table.board tbody tr").first
    await expect(first_row.locator("td.team")).to_have_text("Team A0")
    await expect(first_row.locator(".up")).to_have_text("▲ 25")
    font_px = await first_row.locator("td.team").evaluate(
        "el => parseFloat(getComputedStyle(el).fontSize)"
    )
    assert font_px >= 28 if width >= 1920 else font_px >= 18, font_px
    await expect(page.get_by_text("page 1 of 2")).to_be_visible()
    await expect(page.get_by_text(re.compile(r"updated \d+ s ago"))).to_be_visible()
    await page.screenshot(path=str(artifacts / f"projector-{width}x{height}.png"))
    # It turns the page by itself.
    await expect(page.get_by_text("page 2 of 2")).to_be_visible(timeout=20_000)
    assert errors == []
    await page.close()


async def lines_of(locator) -> float:
    """How many lines the element's text takes."""
    return await locator.evaluate(
        "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)"
    )


@pytest.mark.parametrize("width,height", [(1920, 1080), (1280, 720)])
async def test_projector_header_labels_stay_whole_and_the_update_time_never_blanks(
    teams, services, live_server, browser, artifacts, width, height
):
    await teams.create(name="Ada")
    now = datetime.now(UTC)
    seed_public_scores(services, {"Ada": [(1.0, now - timedelta(minutes=30))]})
    set_competition(services, name="Spring TSP Cup", freeze_at=now - timedelta(minutes=10))
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(f"{live_server}/leaderboard/projector")
    await expect(page.get_by_text("Frozen at")).to_be_visible()
    updated = page.locator("#projector-board [data-updated-at]")
    await expect(updated).to_have_text(re.compile(r"^updated \d+ s ago$"))
    # Each label of the header on one line, and on a wide screen the title too.
    for label in await page.locator("#projector-board .meta > *").all():
        assert await lines_of(label) < 1.5, await label.inner_text()
    if width >= 1920:
        assert await lines_of(page.get_by_role("heading", name="Spring TSP Cup")) < 1.5
    await page.screenshot(path=str(artifacts / f"projector-header-{width}x{height}.png"))
    # Read the moment a poll's board is swapped in (before any timer can run): the label
    # already says when the board was updated.
    text_after_swap = await page.evaluate(
        """() => new Promise((resolve) => document.addEventListener(
            "htmx:afterSwap",
            () => resolve(document.querySelector("#projector-board [data-updated-at]").textContent),
            { once: true },
        ))"""
    )
    assert re.fullmatch(r"updated \d+ s ago", text_after_swap), text_after_swap
    await page.close()
