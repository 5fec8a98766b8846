"""Pages with realistic long data at desktop widths: nothing slides under anything, the
page never scrolls sideways, no control hides in a scroller, and what should keep its
line keeps it (issue 16, "What broke with realistic data")."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.fixtures.browser import covered_controls, log_in
from tests.fixtures.leaderboard import seed_public_scores, set_competition
from tests.fixtures.public_results import Entry, Run, seed_public_batch

WIDTHS = [1280, 1440, 1920]
FILE_NAMES = [
    "tsp_nearest_neighbour_then_2opt_v3.py",
    "simulated_annealing_with_restarts_final_final.py",
    "or_opt_plus_two_opt_with_neighbour_lists_v12.py",
    "greedy_edge_matching_then_lin_kernighan_style.py",
]
CRASH = "Exited with code 3. Last log lines:\nTraceback (most recent call last):\nValueError: boom"

# The page scrolls sideways, or some box does (a control in it hidden until scrolled).
_SIDEWAYS = """() => {
  const found = [];
  if (document.scrollingElement.scrollWidth > window.innerWidth) found.push('the page');
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
      found.push(el.tagName + '#' + el.id + '.' + el.className);
    }
  }
  return found;
}"""


async def sideways(page) -> list[str]:
    return await page.evaluate(_SIDEWAYS)


async def lines_of(locator) -> float:
    """How many lines the element's text takes."""
    return await locator.evaluate(
        "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)"
    )


# How many lines an element's text is laid out on (its boxes' distinct tops).
_TEXT_LINES = """el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
}"""


async def all_on_one_line(locator) -> list[str]:
    """The texts of the matching elements that wrap to a second line."""
    return [
        await item.inner_text()
        for item in await locator.all()
        if await item.evaluate(_TEXT_LINES) > 1
    ]


@pytest.mark.parametrize("width", WIDTHS)
async def test_dashboard_with_long_file_names_keeps_score_and_pick_reachable(
    teams, services, live_server, browser, artifacts, width
):
    team = await teams.create(name="Nearest Neighbours", email="nearest.neighbours@example.org")
    runs = [
        [Run("scored", 3.9), Run("scored", 4.1)],
        [Run("failed", reason=CRASH), Run("failed", reason=CRASH)],
        [Run("queued"), Run("queued")],
    ]
    entries = [Entry(name, runs[n % 3]) for n, name in enumerate(FILE_NAMES * 3)]
    seed_public_batch(services, "Nearest Neighbours", entries)
    page = await browser.new_page(viewport={"width": width, "height": 900})
    await log_in(page, live_server, team.email, team.token, r"/dashboard$")
    await page.screenshot(path=str(artifacts / f"layout-dashboard-{width}.png"), full_page=True)
    assert await sideways(page) == []
    assert await covered_controls(page) == []
    table = page.locator("table.submissions")
    upload_card = page.locator("section[aria-labelledby=upload-heading]")
    table_box, upload_box = await table.bounding_box(), await upload_card.bounding_box()
    # Side by side without overlapping, or stacked.
    assert (
        table_box["x"] + table_box["width"] <= upload_box["x"]
        or upload_box["y"] + upload_box["height"] <= table_box["y"]
    )
    cells = table.locator("tbody td:nth-child(3), tbody td:nth-child(4), tbody .status")
    assert await all_on_one_line(cells) == []
    assert await all_on_one_line(table.locator("tbody .filename")) == []
    for name in await table.locator("tbody .filename").all():  # shortened, whole in a title
        assert await name.get_attribute("title") in FILE_NAMES
    await page.close()


async def test_admin_teams_with_long_emails_shows_every_action_and_new_team_first(
    teams, live_server, browser, artifacts
):
    admin = await teams.admin(name="Organizers", email="organizers@example.org")
    for n in range(25):
        await teams.create(
            name=f"Team {n:02d} Travelling Salespeople",
            email=f"first.lastname.team{n:02d}@university-example.org",
        )
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, live_server, admin.email, admin.token, r"/admin/teams")
    await page.screenshot(path=str(artifacts / "layout-admin-teams-1280.png"), full_page=True)
    assert await sideways(page) == []
    assert await covered_controls(page) == []
    # "New team" comes before the 25-row table.
    new_team = await page.get_by_role("heading", name="New team").bounding_box()
    table = await page.locator("#team-table table").bounding_box()
    assert new_team["y"] < table["y"]
    # Every Deactivate and Rotate button inside the window, without scrolling sideways.
    for button in await page.get_by_role("button", name=re.compile("Deactivate|Rotate")).all():
        box = await button.bounding_box()
        assert box["x"] + box["width"] <= 1280, await button.inner_text()
    # The daily-uploads form keeps its field and "Set" on one line.
    set_buttons = await page.get_by_role("button", name="Set").all()
    for button in set_buttons:
        field = button.locator("xpath=preceding-sibling::input[@name='daily_limit']")
        assert abs((await field.bounding_box())["y"] - (await button.bounding_box())["y"]) < 12
    await page.close()


async def test_leaderboard_with_a_long_name_fits_marks_the_podium_and_ties(
    teams, services, live_server, browser, artifacts
):
    long_name = "Z" * 100
    names = [long_name, "Ada", "Grace", "Linus", "Barbara"]
    for name in names:
        await teams.create(name=name)
    at = datetime.now(UTC) - timedelta(hours=1)
    scores = {long_name: 9.0, "Ada": 8.0, "Grace": 7.0, "Linus": 6.0, "Barbara": 6.0}
    # Linus and Barbara: the same score uploaded at the same moment share rank 4.
    seed_public_scores(services, {name: [(score, at)] for name, score in scores.items()})
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{live_server}/leaderboard")
    await expect(page.locator("table.board tbody tr")).to_have_count(5)
    assert await sideways(page) == []
    assert (await page.locator("table.board").bounding_box())["width"] <= 1280
    for rank in (1, 2, 3):
        row = page.locator(f"table.board tbody tr[data-rank='{rank}']")
        assert await row.get_attribute("class") == f"podium-{rank}"
    tied = page.locator("table.board tbody tr[data-rank='4']")
    await expect(tied).to_have_count(2)
    for row in await tied.all():
        await expect(row.locator(".tie")).to_be_visible()
        await expect(row.locator(".rank")).to_contain_text("tied")  # for screen readers
    await expect(page.locator("tr.podium-1 .tie")).to_have_count(0)
    # The update time reads as people say it, not in seconds.
    updated = page.locator("#board [data-updated-at]")
    await updated.evaluate("el => { el.dataset.updatedAt = String(Date.now() / 1000 - 640); }")
    await expect(updated).to_have_text(re.compile(r"^updated 10 min 4\d s ago$"))
    await page.screenshot(path=str(artifacts / "layout-leaderboard-1280.png"), full_page=True)
    await page.close()


async def test_projector_clamps_a_long_title_aligns_columns_and_fits_twenty_rows(
    teams, services, live_server, browser, artifacts
):
    names = [f"Team {n:02d} of the Travelling Salespeople" for n in range(26)]
    for name in names:
        await teams.create(name=name)
    at = datetime.now(UTC) - timedelta(hours=1)
    seed_public_scores(services, {name: [(10 - n / 10, at)] for n, name in enumerate(names)})
    set_competition(
        services,
        name="Spring 2026 Travelling Salesperson Cup: qualification round for the national "
        "finals, hosted by Computer Science",
    )
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await page.goto(f"{live_server}/leaderboard/projector")
    title = page.locator("#projector-board h1")
    await expect(title).to_contain_text("Spring 2026")
    await page.screenshot(path=str(artifacts / "layout-projector-1920x1080.png"))
    assert await lines_of(title) < 1.5
    rows = page.locator("#projector-board tbody tr")
    await expect(rows).to_have_count(20)
    assert (await rows.nth(19).bounding_box())["y"] + (await rows.nth(19).bounding_box())[
        "height"
    ] <= 1080
    # Each figure's right edge under its heading's right edge.
    for column in (3, 4):  # Score, Entries
        heading = await page.locator(f"#projector-board thead th:nth-child({column})").evaluate(
            "el => el.getBoundingClientRect().right - parseFloat(getComputedStyle(el).paddingRight)"
        )
        for cell in await page.locator(f"#projector-board tbody td:nth-child({column})").all():
            text_right = await cell.evaluate(
                "el => { const r = document.createRange(); r.selectNodeContents(el);"
                " return r.getBoundingClientRect().right; }"
            )
            assert abs(text_right - heading) < 3, (column, text_right, heading)
    await page.close()
