"""A board put up before the event, in a real browser, is never touched again: it comes
alive with the first batch and moves on to every newer one by itself."""

import pytest
from playwright.async_api import expect

from tests.fixtures.leaderboard import seed_board

# Polls run every 2 s; give a few of them, so a slow machine is not a failure.
A_FEW_POLLS_MS = 15_000


@pytest.mark.parametrize(
    "path,shot", [("/leaderboard/projector", "projector"), ("/leaderboard", "leaderboard")]
)
async def test_a_board_opened_before_any_batch_follows_each_new_batch_without_a_reload(
    teams, services, live_server, browser, artifacts, path, shot
):
    for name in ("Ada", "Bob", "Cy"):
        await teams.create(name=name)
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    errors, refused = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            refused.append(f"{response.status} {response.url}") if response.status >= 400 else None
        ),
    )
    await page.goto(f"{live_server}{path}")
    await expect(page.get_by_text("No evaluation batch has run yet.")).to_be_visible()
    # Marks this very document: a reload or navigation would drop the mark.
    await page.evaluate("window.openedBeforeTheEvent = true")
    await page.screenshot(path=str(artifacts / f"{shot}-before-any-batch.png"))

    seed_board(
        services,
        {"Ada": [("scored", 3.0)], "Bob": [("scored", 2.0)], "Cy": [("scored", 1.0)]},
        "Round 1",
    )
    await expect(page.get_by_role("heading", name="Round 1")).to_be_visible(timeout=A_FEW_POLLS_MS)
    first_row = page.locator("table.board tbody tr").first
    await expect(first_row.locator("td.team")).to_have_text("Ada")

    seed_board(
        services,
        {"Ada": [("scored", 1.0)], "Bob": [("scored", 2.0)], "Cy": [("scored", 3.0)]},
        "Round 2",
    )
    await expect(page.get_by_role("heading", name="Round 2")).to_be_visible(timeout=A_FEW_POLLS_MS)
    await expect(first_row.locator("td.team")).to_have_text("Cy")
    await expect(first_row.locator(".up")).to_have_text("▲ 2")
    await page.screenshot(path=str(artifacts / f"{shot}-following-round-2.png"))

    assert await page.evaluate("window.openedBeforeTheEvent") is True
    assert refused == [] and errors == []
    await page.close()
