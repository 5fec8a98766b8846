"""A board put up before the competition, in a real browser, is never touched again: it
comes alive with the first scores, freezes, and shows the final results at the reveal,
by itself."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors
from tests.fixtures.leaderboard import seed_final_scores, seed_public_scores, set_competition

# Polls run every 2 s; give a few of them, so a slow machine is not a failure.
A_FEW_POLLS_MS = 15_000


@pytest.mark.parametrize(
    "path,shot", [("/leaderboard/projector", "projector"), ("/leaderboard", "leaderboard")]
)
async def test_a_board_opened_before_any_score_follows_the_competition_without_a_reload(
    teams, services, live_server, browser, artifacts, path, shot
):
    for name in ("Ada", "Bob", "Cy"):
        await teams.create(name=name)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    freeze = now - timedelta(hours=1)
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
    await expect(page.get_by_text("No scores yet")).to_be_visible()
    await expect(page.get_by_role("heading", name="Competition")).to_be_visible()
    # Marks this very document: a reload or navigation would drop the mark.
    await page.evaluate("window.openedBeforeTheEvent = true")
    await page.screenshot(path=str(artifacts / f"{shot}-before-any-score.png"))

    ids = seed_public_scores(
        services,
        {
            "Ada": [(3.0, freeze - timedelta(minutes=30))],
            "Bob": [(2.0, freeze - timedelta(minutes=20)), (9.0, freeze + timedelta(minutes=5))],
            "Cy": [(1.0, freeze - timedelta(minutes=10))],
        },
    )
    first_row = page.locator("table.board tbody tr").first
    await expect(first_row.locator("td.team")).to_have_text("Bob", timeout=A_FEW_POLLS_MS)

    set_competition(services, freeze_at=freeze)  # Bob's 9.0 came after the freeze
    await expect(page.get_by_text(f"Frozen at {freeze:%H:%M} (UTC)")).to_be_visible(
        timeout=A_FEW_POLLS_MS
    )
    await expect(first_row.locator("td.team")).to_have_text("Ada")
    await page.screenshot(path=str(artifacts / f"{shot}-frozen.png"))

    set_competition(services, ends_at=now - timedelta(minutes=1))
    seed_final_scores(services, {ids["Ada"][0]: 1.0, ids["Bob"][1]: 2.0, ids["Cy"][0]: 3.0})
    set_competition(services, revealed_at=now)
    await expect(first_row.locator("td.team")).to_have_text("Cy", timeout=A_FEW_POLLS_MS)
    await expect(first_row.locator(".up")).to_have_text("▲ 2")  # public rank 3 -> 1
    await page.screenshot(path=str(artifacts / f"{shot}-final.png"))

    assert await page.evaluate("window.openedBeforeTheEvent") is True
    assert refused == [] and errors == []
    await page.close()


async def test_the_header_of_a_board_left_open_follows_the_organizers_actions(
    teams, services, live_server, browser
):
    """The header counts down by the clock; what no clock foresees (a moved end, the
    final evaluation, the reveal) reaches it with the board's polls."""
    await teams.create(name="Ada")
    now = datetime.now(UTC)
    ids = seed_public_scores(services, {"Ada": [(1.0, now - timedelta(minutes=30))]})
    set_competition(services, ends_at=now - timedelta(minutes=1))
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    errors = collect_script_errors(page)
    await page.goto(f"{live_server}/leaderboard")
    badge = page.locator("header .phase-clock")
    await expect(badge).to_have_text("Ended")
    await page.evaluate("window.leftOpen = true")

    set_competition(services, ends_at=now + timedelta(days=2, hours=3))  # the end moved
    await expect(badge).to_contain_text("Open · ends in 2 d", timeout=A_FEW_POLLS_MS)
    set_competition(services, ends_at=now - timedelta(minutes=1))
    seed_final_scores(services, {ids["Ada"][0]: 2.0})
    await expect(badge).to_have_text("Final evaluation", timeout=A_FEW_POLLS_MS)
    await expect(badge).to_have_attribute("data-phase", "final")
    set_competition(services, revealed_at=now)
    await expect(badge).to_have_text("Results revealed", timeout=A_FEW_POLLS_MS)
    await expect(badge).to_have_attribute("data-phase", "revealed")
    assert await page.evaluate("window.leftOpen") is True
    assert errors == [], errors
    await page.close()
