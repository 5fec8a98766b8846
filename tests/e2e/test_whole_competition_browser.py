"""A whole competition in real browsers, on a real worker with Docker and the real clock:
a projector put up before anything exists and never touched again, three teams scored on
the public seeds, the freeze (visitors see the frozen board, the team its new score), the
end, the final evaluation on the private seeds, the reveal stepped on the projector, and
the final board everywhere by itself. Every screenshot is looked at."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, log_in, upload_file
from tests.fixtures.evaluation import example

# The competition's moments, counted from when the admin saves them. The three uploads
# need only be made before the freeze (scoring may end after it: the frozen board counts
# uploads made before freeze_at), the late one between the freeze and the end.
FREEZE_IN = timedelta(seconds=40)
END_AFTER_FREEZE = timedelta(seconds=25)
# The longest wait for anything driven by the clock, the worker or a 2 s poll.
MOMENT_MS = 90_000
NAME = "Spring TSP Cup"
PUBLIC_SEEDS = "1-2"
# Chosen so that they appear nowhere else: if one reaches a visitor or a team, it leaked.
PRIVATE_SEEDS = (8642097531, 7531908642)

SWAP, NEAREST, ORDER = "Team Swap", "Team Nearest", "Team Order"
SOLUTIONS = {
    SWAP: "tsp_two_opt.py",
    NEAREST: "tsp_nearest_neighbour.py",
    ORDER: "tsp_input_order.py",
}
LATE_FILE = "tsp_two_opt.py"  # Team Order's upload after the freeze
PUBLIC_ORDER = [SWAP, NEAREST, ORDER]  # by quality; also the frozen board
# Team Order's late 2-opt ties Team Swap's score; the tie goes to the earlier upload.
LIVE_ORDER = [SWAP, ORDER, NEAREST]
# The ceremony, one team per step from the last place up: (team, final rank, shake-up
# against the frozen board the audience saw).
CEREMONY = [(NEAREST, "3", "▼ 1"), (ORDER, "2", "▲ 1"), (SWAP, "1", "=")]
FINAL_ORDER = [team for team, _, _ in reversed(CEREMONY)]


def local_input(moment: datetime) -> str:
    """A `datetime-local` value in the live portal's timezone (UTC, the default)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def board_teams(page):
    return page.locator("table.board tbody td.team")


def board_row(page, team: str):
    return page.locator("table.board tbody tr", has=page.locator("td.team", has_text=team))


async def board_refreshed_at(page) -> float:
    return float(await page.locator("[data-updated-at]").first.get_attribute("data-updated-at"))


async def wait_until_showing(page, refreshed_at: float) -> None:
    """Wait until the page's own polls show the board version of `refreshed_at` (or a
    newer one): whatever it shows then, it shows knowing the latest scores."""
    await page.wait_for_function(
        "at => Number(document.querySelector('[data-updated-at]')?.dataset.updatedAt) >= at",
        arg=refreshed_at,
        timeout=MOMENT_MS,
    )


async def expect_scored(row) -> str:
    """Wait for the dashboard row's public score; return it as shown."""
    await expect(row.locator(".status")).to_have_text("scored", timeout=MOMENT_MS)
    score = row.locator("a.score")
    await expect(score).to_have_text(re.compile(r"^\d+\.\d{4}$"))
    return await score.inner_text()


async def test_a_whole_competition_from_an_empty_projector_to_the_revealed_winner(
    teams, client, live_server, browser, eval_worker, artifacts
):
    # 1. Before anything: three teams and an admin, no seeds, no upload.
    admin = await teams.admin(name="Organizers", email="admin@example.org")
    team_of = {
        name: await teams.create(name=name, email=f"{name.split()[1].lower()}@example.org")
        for name in SOLUTIONS
    }
    assert (await client.get("/api/v1/competition")).json()["public_seeds"] == []
    errors: dict[str, list[str]] = {}
    seen_by_others = []  # every page a visitor or a team looked at

    async def open_page(who: str, width=1280, height=900):
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        errors[who] = collect_script_errors(page)
        return page

    projector = await open_page("projector", 1920, 1080)
    refused = []
    projector.on(
        "response",
        lambda response: (
            refused.append(f"{response.status} {response.url}") if response.status >= 400 else None
        ),
    )
    await projector.goto(f"{live_server}/leaderboard/projector")
    await expect(projector.get_by_role("heading", name="Competition")).to_be_visible()
    await expect(projector.get_by_text("No scores yet")).to_be_visible()
    # Marks this very document: a reload or a navigation would drop the mark.
    await projector.evaluate("window.untouchedSinceBeforeTheStart = true")
    await projector.screenshot(path=str(artifacts / "walk-01-projector-empty.png"))
    seen_by_others.append(projector)

    # 2. The admin sets the competition up on its page.
    admin_page = await open_page("admin")
    await log_in(admin_page, live_server, admin.email, admin.token, r"/admin/teams$")
    await admin_page.get_by_role("link", name="Competition", exact=True).click()
    await admin_page.wait_for_url(re.compile(r"/admin/competition$"))
    now = datetime.now(UTC).replace(microsecond=0)
    freeze_at = now + FREEZE_IN
    ends_at = freeze_at + END_AFTER_FREEZE
    await admin_page.get_by_label("Name", exact=True).fill(NAME)
    await admin_page.get_by_label("Start", exact=True).fill(local_input(now - timedelta(hours=1)))
    await admin_page.get_by_label("Freeze").fill(local_input(freeze_at))
    await admin_page.get_by_label("End", exact=True).fill(local_input(ends_at))
    await admin_page.get_by_label("Public seeds").fill(PUBLIC_SEEDS)
    await admin_page.get_by_label("Private seeds").fill(", ".join(map(str, PRIVATE_SEEDS)))
    await admin_page.get_by_role("button", name="Save settings").click()
    await expect(admin_page.get_by_text("Settings saved.")).to_be_visible()
    await expect(admin_page.locator(".phase-step.current")).to_contain_text("Open")
    await admin_page.screenshot(path=str(artifacts / "walk-02-admin-settings.png"), full_page=True)
    public = (await client.get("/api/v1/competition")).json()
    assert (public["name"], public["phase"], public["public_seeds"]) == (NAME, "open", [1, 2])
    assert datetime.fromisoformat(public["freeze_at"]) == freeze_at
    assert datetime.fromisoformat(public["ends_at"]) == ends_at
    # The projector takes the new name by itself.
    await expect(projector.get_by_role("heading", name=NAME)).to_be_visible(timeout=MOMENT_MS)

    visitor = await open_page("visitor")
    await visitor.goto(f"{live_server}/leaderboard")
    await visitor.evaluate("window.untouchedSinceBeforeTheStart = true")
    seen_by_others.append(visitor)

    # 3. Each team uploads on its dashboard; every row goes to its score by itself.
    dashboards = {}
    for name, file in SOLUTIONS.items():
        page = dashboards[name] = await open_page(name)
        await log_in(page, live_server, team_of[name].email, team_of[name].token, r"/dashboard$")
        await page.evaluate("window.sameDashboard = true")
        await upload_file(page, file, example(file))
        await expect(
            page.get_by_role("status").filter(has_text=f"Uploaded {file}")
        ).to_contain_text("Queued for scoring on 2 public seeds")
        seen_by_others.append(page)
    swap_row = dashboards[SWAP].locator("tbody tr", has_text=SOLUTIONS[SWAP])
    await expect(swap_row.locator(".status")).to_have_text(re.compile("queued|running|scored"))
    public_scores = {
        name: await expect_scored(page.locator("tbody tr", has_text=SOLUTIONS[name]))
        for name, page in dashboards.items()
    }
    assert float(public_scores[SWAP]) > float(public_scores[NEAREST]) > float(public_scores[ORDER])
    for page in dashboards.values():
        assert await page.evaluate("window.sameDashboard === true")
    await dashboards[SWAP].screenshot(
        path=str(artifacts / "walk-03-dashboard-scored.png"), full_page=True
    )

    for page in (projector, visitor):
        await expect(board_teams(page)).to_have_text(PUBLIC_ORDER, timeout=MOMENT_MS)
        for name, score in public_scores.items():
            await expect(board_row(page, name).locator("td.score")).to_have_text(score)
    await projector.screenshot(path=str(artifacts / "walk-03-projector-public.png"))
    await visitor.screenshot(path=str(artifacts / "walk-03-visitor-public.png"), full_page=True)

    # 4. The freeze: the visitor's board says so, by itself.
    frozen_mark = f"Frozen at {freeze_at:%H:%M} (UTC)"
    await expect(visitor.get_by_text(frozen_mark)).to_be_visible(timeout=MOMENT_MS)
    await expect(projector.get_by_text(frozen_mark)).to_be_visible(timeout=MOMENT_MS)
    await expect(visitor.locator("header .phase-clock")).to_have_attribute("data-phase", "frozen")
    # The last team uploads a better solution and sees its new score on its dashboard.
    order_page = dashboards[ORDER]
    await upload_file(order_page, LATE_FILE, example(LATE_FILE), note="2-opt after the freeze")
    late_row = order_page.locator("tbody tr", has_text=LATE_FILE)
    late_score = await expect_scored(late_row)
    assert late_score == public_scores[SWAP]  # the same code on the same seeds
    assert await order_page.evaluate("window.sameDashboard === true")
    await order_page.screenshot(
        path=str(artifacts / "walk-04-dashboard-after-freeze.png"), full_page=True
    )
    # The admin's live board has it ...
    live = await admin_page.context.new_page()
    errors["admin-live"] = collect_script_errors(live)
    await live.goto(f"{live_server}/leaderboard?board=live")
    await expect(board_teams(live)).to_have_text(LIVE_ORDER, timeout=MOMENT_MS)
    await expect(board_row(live, ORDER).locator("td.score")).to_have_text(late_score)
    await live.screenshot(path=str(artifacts / "walk-04-admin-live-board.png"), full_page=True)
    # ... while the visitor and the projector, polling the same board version, still show
    # the standings of the freeze.
    latest = await board_refreshed_at(live)
    for page in (visitor, projector):
        await wait_until_showing(page, latest)
        await expect(board_teams(page)).to_have_text(PUBLIC_ORDER)
        await expect(board_row(page, ORDER).locator("td.score")).to_have_text(public_scores[ORDER])
        await expect(page.locator("td.score", has_text=late_score)).to_have_count(1)  # Swap's
    await visitor.screenshot(path=str(artifacts / "walk-04-visitor-frozen.png"), full_page=True)
    await projector.screenshot(path=str(artifacts / "walk-04-projector-frozen.png"))

    # 5. The end: uploads are refused; the admin runs the final evaluation and watches it.
    badge = admin_page.locator("header .phase-clock")
    await expect(badge).to_have_attribute("data-phase", "ended", timeout=MOMENT_MS)
    await order_page.reload()
    await expect(order_page.locator("#upload-closed")).to_contain_text("The competition has ended")
    await expect(order_page.get_by_role("button", name="Upload")).to_have_count(0)
    await order_page.screenshot(path=str(artifacts / "walk-05-dashboard-ended.png"), full_page=True)

    await admin_page.reload()
    await expect(admin_page.locator(".phase-step.current")).to_contain_text("Ended")
    await admin_page.get_by_role("button", name="Start final evaluation").click()
    await expect(admin_page.get_by_text("Final evaluation started")).to_be_visible()
    await admin_page.evaluate("window.watchingTheFinal = true")
    await expect(badge).to_have_text("Final evaluation")
    # Team Order picked nothing: its two best public uploads run; the others' one each.
    runs_done = admin_page.locator("#final-done")
    await expect(runs_done).to_have_text(re.compile(r"^\d+ of 8 runs done$"))
    await admin_page.screenshot(
        path=str(artifacts / "walk-05-admin-final-running.png"), full_page=True
    )
    await expect(runs_done).to_have_text("8 of 8 runs done", timeout=MOMENT_MS)
    await expect(admin_page.get_by_role("button", name="Reveal results")).to_be_enabled()
    assert await admin_page.evaluate("window.watchingTheFinal === true")
    await admin_page.screenshot(
        path=str(artifacts / "walk-05-admin-final-done.png"), full_page=True
    )
    # Not for the visitor before the reveal: the page and the API refuse the final board.
    peek = await visitor.context.new_page()
    refused_page = await peek.goto(f"{live_server}/leaderboard?board=final")
    assert refused_page.status == 403
    await expect(peek.get_by_text("The final results are not revealed yet.")).to_be_visible()
    api = await peek.request.get(f"{live_server}/api/v1/leaderboard?board=final")
    assert api.status == 403 and (await api.json())["error"]["code"] == "final_not_revealed"
    seen_by_others.append(peek)
    await expect(board_teams(visitor)).to_have_text(PUBLIC_ORDER)

    # 6. The reveal ceremony, stepped by the organizer from the last place up.
    ceremony = await admin_page.context.new_page()
    errors["reveal"] = collect_script_errors(ceremony)
    await ceremony.set_viewport_size({"width": 1920, "height": 1080})
    await ceremony.goto(f"{live_server}/leaderboard/projector/reveal")
    stage = ceremony.locator("#reveal")
    await expect(stage).to_have_attribute("data-step", "0", timeout=MOMENT_MS)
    on_screen = ceremony.locator("#reveal-board > li .team")
    await expect(on_screen).to_have_text(PUBLIC_ORDER)  # the frozen order, its scores
    await expect(ceremony.get_by_text("frozen scores until revealed")).to_be_visible()
    for name, score in public_scores.items():
        row = ceremony.locator("#reveal-board > li", has_text=name)
        await expect(row.locator(".score")).to_have_text(score)
    await ceremony.screenshot(path=str(artifacts / "walk-06-reveal-start.png"))
    for step, (name, rank, shake) in enumerate(CEREMONY, start=1):
        await ceremony.keyboard.press("ArrowRight")
        await expect(stage).to_have_attribute("data-step", str(step))
        current = ceremony.locator("#reveal-board > li.current")
        await expect(current.locator(".team")).to_have_text(name)
        await expect(current.locator(".rank")).to_have_text(rank)
        await expect(current.locator(".shake")).to_have_text(shake)
        await expect(ceremony.locator("#reveal-board > li.revealed")).to_have_count(step)
        await ceremony.wait_for_function("() => document.getAnimations().length === 0")
        if step == 2:
            assert (await client.get("/api/v1/competition")).json()["phase"] == "final"
            await ceremony.screenshot(path=str(artifacts / "walk-06-reveal-mid.png"))
    await expect(on_screen).to_have_text(FINAL_ORDER)
    await expect(ceremony.locator("#reveal-board > li.winner .team")).to_have_text(SWAP)
    await expect(stage).to_have_attribute("data-revealed", "true")
    await expect(ceremony.locator("#reveal-error")).to_be_hidden()
    await ceremony.screenshot(path=str(artifacts / "walk-06-reveal-winner.png"))
    assert (await client.get("/api/v1/competition")).json()["phase"] == "revealed"
    final_scores = {
        name: await ceremony.locator("#reveal-board > li", has_text=name)
        .locator(".score")
        .inner_text()
        for name in FINAL_ORDER
    }

    # 7. The visitor's board and the untouched projector show the final board by
    # themselves: the final rank, the public rank beside it, the final score.
    for page in (visitor, projector):
        await expect(board_teams(page)).to_have_text(FINAL_ORDER, timeout=MOMENT_MS)
        await expect(page.locator("th", has_text="Public")).to_have_count(1)
        for rank, name in enumerate(FINAL_ORDER, start=1):
            row = board_row(page, name)
            await expect(row.locator("td.rank")).to_have_text(str(rank))
            # The public rank beside it: the team's place on the board the room last
            # saw (the frozen one), as in the ceremony, so the two never disagree.
            public_rank = PUBLIC_ORDER.index(name) + 1
            await expect(row.locator("td.public-rank")).to_have_text(
                re.compile(rf"^{public_rank}\b")
            )
            await expect(row.locator("td.score")).to_have_text(final_scores[name])
    await expect(projector.get_by_text("Final results")).to_be_visible()
    await expect(visitor.locator("header .phase-clock")).to_have_text("Results revealed")
    await visitor.screenshot(path=str(artifacts / "walk-07-visitor-final.png"), full_page=True)
    await projector.screenshot(path=str(artifacts / "walk-07-projector-final.png"))
    assert await projector.evaluate("window.untouchedSinceBeforeTheStart === true")
    assert await visitor.evaluate("window.untouchedSinceBeforeTheStart === true")
    assert refused == [], refused

    # Nothing private reached a visitor or a team, on any page they looked at.
    for page in seen_by_others:
        content = await page.content()
        for seed in PRIVATE_SEEDS:
            assert str(seed) not in content, (page.url, seed)
    assert all(found == [] for found in errors.values()), errors
    for context in {page.context for page in [*seen_by_others, admin_page]}:
        await context.close()
