"""The reveal ceremony on the projector, in a real browser at two screen sizes: the final
standings from the last place up, one key press per team; screenshots are looked at."""

from datetime import timedelta

import pytest
from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, log_in
from tests.fixtures.final_standings import (
    AUDIENCE_ORDER,
    FINAL_ORDER,
    LATE,
    SHAKE_UP,
    Upload,
    ceremony_order,
    finish_final,
    seed_final,
)
from tests.fixtures.leaderboard import refresh_now

# What each revealed row shows: final rank, final score, shake-up against the frozen board.
REVEALED = {
    LATE: ("6", "0.2243", "new"),
    "Ada": ("5", "0.4129", "▼ 4"),
    "Eve": ("3", "0.5071", "▲ 2"),
    "Dee": ("3", "0.5071", "▲ 1"),
    "Cy": ("2", "0.8533", "▲ 1"),
    "Bo": ("1", "0.9517", "▲ 1"),
}


async def on_screen(page) -> list[str]:
    return await page.locator("#reveal-board > li .team").all_inner_texts()


async def settled(page) -> None:
    """Wait until every row has finished moving (for a picture or a layout check)."""
    await page.wait_for_function("() => document.getAnimations().length === 0")


async def assert_fits(page, name: str, width: int) -> None:
    """The row of `name` stays on one line: a long name ends in an ellipsis before the
    score, which stays whole on screen."""
    row = page.locator("#reveal-board > li", has_text=name)
    team_box = await row.locator(".team").bounding_box()
    score_box = await row.locator(".score").bounding_box()
    shake_box = await row.locator(".shake").bounding_box()
    assert team_box["x"] + team_box["width"] <= score_box["x"], (team_box, score_box)
    assert shake_box["x"] + shake_box["width"] <= width, shake_box
    row_box = await row.bounding_box()
    assert team_box["height"] <= row_box["height"], (team_box, row_box)


async def expect_step(page, steps: int) -> None:
    total = len(FINAL_ORDER)
    await expect(page.locator("#reveal")).to_have_attribute("data-step", str(steps))
    await expect(page.get_by_text(f"step {steps} of {total}")).to_be_visible()
    assert await on_screen(page) == ceremony_order(steps)
    revealed = page.locator("#reveal-board > li.revealed")
    await expect(revealed).to_have_count(steps)
    if steps:
        current = page.locator("#reveal-board > li.current")
        name = FINAL_ORDER[total - steps]
        await expect(current.locator(".team")).to_have_text(name)
        rank, score, shake = REVEALED[name]
        await expect(current.locator(".rank")).to_have_text(rank)
        await expect(current.locator(".score")).to_have_text(score)
        await expect(current.locator(".shake")).to_have_text(shake)


@pytest.mark.parametrize("width,height", [(1920, 1080), (1280, 720)])
async def test_admin_reveals_the_final_standings_step_by_step_and_opens_the_final_board(
    teams, client, services, live_server, browser, artifacts, width, height
):
    admin = await teams.admin(name="Organizers")
    for name in SHAKE_UP:  # created in this order: Dee's id is below Eve's
        await teams.create(name=name)
    seed_final(services, SHAKE_UP)

    page = await browser.new_page(viewport={"width": width, "height": height})
    errors = collect_script_errors(page)
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.goto(f"{live_server}/leaderboard/projector/reveal?interval=0.3")
    assert await page.locator("nav").count() == 0  # no chrome

    # First, the board the audience saw at the freeze, with those scores.
    await expect_step(page, 0)
    assert await on_screen(page) == AUDIENCE_ORDER
    first = page.locator("#reveal-board > li").first
    await expect(first.locator(".rank")).to_have_text("1")
    await expect(first.locator(".score")).to_have_text("0.9000")
    await expect(page.locator("#reveal-board > li.revealed")).to_have_count(0)
    font_px = await first.locator(".team").evaluate(
        "el => parseFloat(getComputedStyle(el).fontSize)"
    )
    assert font_px >= 28 if width >= 1920 else font_px >= 18, font_px

    # Each press reveals the lowest-placed team not yet revealed.
    for steps in range(1, 4):
        await page.keyboard.press("ArrowRight")
        await expect_step(page, steps)
    await settled(page)
    await page.screenshot(path=str(artifacts / f"reveal-mid-{width}x{height}.png"))

    # Back one step: Eve returns to its place among the unrevealed, with its frozen score.
    await page.keyboard.press("ArrowLeft")
    await expect_step(page, 2)
    eve = page.locator("#reveal-board > li", has_text="Eve")
    await expect(eve).to_have_attribute("data-state", "public")
    await expect(eve.locator(".score")).to_have_text("0.5000")
    # Space and Enter step forward too.
    await page.keyboard.press("Space")
    await expect_step(page, 3)
    await page.keyboard.press("Enter")
    await expect_step(page, 4)

    # Home starts over; auto-play then runs the whole ceremony by itself.
    await page.keyboard.press("Home")
    await expect_step(page, 0)
    competition = await client.get("/api/v1/competition")
    assert competition.json()["phase"] == "final"  # nothing is public before the winner
    await page.keyboard.press("a")
    await expect(page.locator("#reveal-autoplay")).to_have_text("▶ auto-play · every 0.3 s")
    await expect(page.locator("#reveal-autoplay")).to_be_visible()
    await expect(page.locator("#reveal")).to_have_attribute("data-step", "6", timeout=15_000)
    await expect_step(page, 6)
    await expect(page.locator("#reveal-autoplay")).to_be_hidden()
    winner = page.locator("#reveal-board > li.winner")
    await expect(winner.locator(".team")).to_have_text("Bo")

    # The winner shown, the final board is public.
    await expect(page.locator("#reveal")).to_have_attribute("data-revealed", "true")
    await expect(page.locator("#reveal-error")).to_be_hidden()
    competition = await client.get("/api/v1/competition")
    assert competition.json()["phase"] == "revealed"
    await settled(page)
    await assert_fits(page, LATE, width)
    await page.screenshot(path=str(artifacts / f"reveal-final-{width}x{height}.png"))

    # After the reveal the ceremony can run again (it calls the reveal no more).
    await page.reload()
    await expect_step(page, 0)
    for _ in FINAL_ORDER:
        await page.keyboard.press("ArrowRight")
    await expect_step(page, 6)
    await expect(page.locator("#reveal-error")).to_be_hidden()
    assert errors == [], errors
    await page.close()


async def test_a_failed_reveal_call_is_shown_on_the_projector(
    teams, services, live_server, browser
):
    admin = await teams.admin(name="Organizers")
    for name in SHAKE_UP:
        await teams.create(name=name)
    seed_final(services, SHAKE_UP)
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.goto(f"{live_server}/leaderboard/projector/reveal")
    await expect_step(page, 0)
    # The session ends meanwhile (logged out in another tab): the reveal call is refused.
    await page.context.clear_cookies()
    for _ in FINAL_ORDER:
        await page.keyboard.press("ArrowRight")
    await expect_step(page, 6)
    error = page.locator("#reveal-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("The final board could not be made public")
    await page.close()


async def test_the_waiting_projector_turns_into_the_ceremony_once_the_final_is_in(
    teams, services, live_server, browser
):
    admin = await teams.admin(name="Organizers")
    for name in SHAKE_UP:
        await teams.create(name=name)
    seed_final(services, SHAKE_UP, finished=False)
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    errors = collect_script_errors(page)
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.goto(f"{live_server}/leaderboard/projector/reveal?interval=2")
    await expect(
        page.get_by_text("The final evaluation is running: 5 of 6 runs done.")
    ).to_be_visible()
    await expect(page.locator("#reveal-board")).to_have_count(0)
    finish_final(services, SHAKE_UP["Ada"][0].final)
    refresh_now(services)
    # No reload by hand: the page polls and loads the ceremony, keeping its interval.
    await expect_step(page, 0)
    assert page.url.endswith("/leaderboard/projector/reveal?interval=2")
    await page.keyboard.press("a")
    await expect(page.locator("#reveal-autoplay")).to_have_text("▶ auto-play · every 2 s")
    await page.keyboard.press("a")
    await expect(page.locator("#reveal-autoplay")).to_be_hidden()
    assert errors == [], errors
    await page.close()


async def test_on_a_board_longer_than_the_screen_the_revealed_row_stays_in_view(
    teams, services, live_server, browser
):
    admin = await teams.admin(name="Organizers")
    uploads = {}
    for n in range(30):  # the audience's order: 29 first ... 00 last
        uploads[f"Team {n:02d}"] = [
            Upload(timedelta(hours=-2, minutes=n), 0.5 + n / 100, final=0.9 - (n * 7 % 30) / 50)
        ]
        await teams.create(name=f"Team {n:02d}")
    seed_final(services, uploads)
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams$")
    await page.goto(f"{live_server}/leaderboard/projector/reveal")
    await expect(page.locator("#reveal-board > li")).to_have_count(30)
    for _ in range(12):
        await page.keyboard.press("ArrowRight")
    await expect(page.locator("#reveal")).to_have_attribute("data-step", "12")
    # Twelfth from the bottom of 30: far below the first screen, yet on it.
    await settled(page)
    await expect(page.locator("#reveal-board > li.current")).to_be_in_viewport()
    await page.keyboard.press("Home")
    await settled(page)
    await expect(page.locator("#reveal-board > li").first).to_be_in_viewport()
    await page.close()
