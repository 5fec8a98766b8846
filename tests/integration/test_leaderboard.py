"""The leaderboard: ranking rules, the cheap 304 poll, public access, live updates."""

import re
import time
from html import unescape

from tests.fixtures.evaluation import example, upload, wait_for_batch
from tests.fixtures.leaderboard import refresh_now, seed_board


async def test_ranking_shares_ranks_on_ties_and_counts_failed_runs_as_zero(client, teams, services):
    for name in ("Ada", "Bob", "Cy", "Dee", "Eve"):
        await teams.create(name=name)
    seed_board(
        services,
        {
            "Ada": [("scored", 4.0), ("scored", 4.0)],  # 4.0
            "Bob": [("scored", 5.0), ("scored", 3.0)],  # 4.0, later submission than Ada
            "Cy": [("scored", 9.0), ("timeout", None)],  # 4.5: the timeout counts as 0
            "Dee": [("scored", 1.0), ("running", None)],  # not all runs ended: no score yet
            "Eve": [("failed", None), ("failed", None)],  # 0.0
        },
    )
    board = (await client.get("/api/v1/leaderboard")).json()  # public: no login
    rows = [
        (r["rank"], r["team_name"], r["score"], r["runs_done"], r["runs_total"])
        for r in board["items"]
    ]
    assert rows == [
        (1, "Cy", 4.5, 2, 2),
        (2, "Ada", 4.0, 2, 2),
        (2, "Bob", 4.0, 2, 2),
        (4, "Eve", 0.0, 2, 2),
        (None, "Dee", None, 1, 2),
    ]
    assert board["runs_done"] == 9 and board["runs_total"] == 10


async def test_change_since_the_previous_batch(client, teams, services):
    for name in ("Ada", "Bob"):
        await teams.create(name=name)
    seed_board(services, {"Ada": [("scored", 2.0)], "Bob": [("scored", 1.0)]}, "Round 1")
    seed_board(services, {"Ada": [("scored", 1.0)], "Bob": [("scored", 3.0)]}, "Round 2")
    board = (await client.get("/api/v1/leaderboard")).json()
    assert board["batch_name"] == "Round 2"
    assert [(r["team_name"], r["change"]) for r in board["items"]] == [("Bob", 1), ("Ada", -1)]
    page = await client.get("/leaderboard")
    assert "▲ 1" in page.text and "▼ 1" in page.text


async def test_a_matching_etag_answers_304_until_the_board_changes(client, teams, services):
    await teams.create(name="Ada")
    seed_board(services, {"Ada": [("scored", 2.0)]})
    first = await client.get("/api/v1/leaderboard")
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/api/v1/leaderboard", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    fragment = await client.get("/leaderboard", headers={"HX-Request": "true"})
    frag_tag = fragment.headers["etag"]
    assert fragment.text.lstrip().startswith('<section class="card" id="board"')
    assert (
        await client.get("/leaderboard", headers={"HX-Request": "true", "If-None-Match": frag_tag})
    ).status_code == 304
    refresh_now(services)  # new results landed
    changed = await client.get("/api/v1/leaderboard", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


async def test_search_pagination_and_the_team_history_page(client, teams, services):
    for n in range(7):
        await teams.create(name=f"Robot {n}")
    seed_board(services, {f"Robot {n}": [("scored", float(n))] for n in range(7)}, "R1")
    seed_board(services, {f"Robot {n}": [("scored", float(7 - n))] for n in range(7)}, "R2")
    page = (await client.get("/api/v1/leaderboard?size=3&page=2")).json()
    assert page["total"] == 7 and [r["team_name"] for r in page["items"]] == [
        "Robot 3",
        "Robot 4",
        "Robot 5",
    ]
    found = (await client.get("/api/v1/leaderboard?q=robot 6")).json()
    assert [r["team_name"] for r in found["items"]] == ["Robot 6"]
    team_id = found["items"][0]["team_id"]
    history = await client.get(f"/leaderboard/teams/{team_id}")
    assert "<polyline" in history.text and "R1" in history.text and "R2" in history.text
    assert (await client.get("/leaderboard/teams/99999")).status_code == 404


async def test_a_new_result_shows_on_the_next_poll(client, teams, eval_worker):
    admin = await teams.admin()
    for name, file in (("Fast", "tsp_two_opt.py"), ("Slow", "tsp_input_order.py")):
        team = await teams.create(name=name)
        await upload(client, team, file, example(file))
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "live", "seeds": [1, 2, 3], "selection": "final_picks"},
    )
    await client.post(f"/api/v1/batches/{created.json()['id']}/start", headers=admin.auth)
    seen_done = set()
    tag = None
    import asyncio

    for _ in range(150):
        response = await client.get(
            "/api/v1/leaderboard", headers={"If-None-Match": tag} if tag else {}
        )
        if response.status_code == 200:
            tag = response.headers["etag"]
            board = response.json()
            seen_done.add(board["runs_done"])
            if board["runs_done"] == 6 and all(r["score"] is not None for r in board["items"]):
                break
        await asyncio.sleep(0.1)
    await wait_for_batch(client, admin, created.json()["id"])
    assert board["runs_total"] == 6
    assert [r["team_name"] for r in board["items"]] == ["Fast", "Slow"]
    assert len(seen_done) >= 2, seen_done  # the board moved while the batch ran


def poll_url(html: str, element_id: str) -> str:
    """The URL a live board polls, as the browser reads it from the element's hx-get."""
    match = re.search(rf'id="{element_id}"[^>]*?hx-get="([^"]*)"', html, re.DOTALL)
    assert match, f"#{element_id} does not poll"
    return unescape(match.group(1))


# (page, the element that polls, how the batch shown is headed)
LIVE_BOARDS = [
    ("/leaderboard", "board", "<h2>{} <span"),
    ("/leaderboard/projector", "projector-board", "<h1>{}</h1>"),
]


async def test_a_board_polled_before_any_batch_says_none_has_run(client):
    for path, element_id, _ in LIVE_BOARDS:
        opened = await client.get(path)
        assert opened.status_code == 200
        poll = await client.get(poll_url(opened.text, element_id), headers={"HX-Request": "true"})
        assert poll.status_code == 200, poll.text
        assert "No evaluation batch has run yet." in poll.text
    # Pages opened before this fix still poll with an empty `batch=`, and the batch menu
    # sends one for "latest": an empty field is no batch, not a malformed number.
    for url in ("/leaderboard?batch=&q=&page=1", "/leaderboard/projector?batch=&page=1&since=0"):
        poll = await client.get(url, headers={"HX-Request": "true"})
        assert poll.status_code == 200, poll.text
        assert "No evaluation batch has run yet." in poll.text
    board = await client.get("/api/v1/leaderboard?batch=")
    assert board.status_code == 200 and board.json()["batch_id"] is None


async def test_a_board_opened_without_a_batch_follows_the_first_and_every_newer_one(
    client, teams, services
):
    for name in ("Ada", "Bob"):
        await teams.create(name=name)
    polls = {}
    for path, element_id, _ in LIVE_BOARDS:
        opened = await client.get(path)
        polls[path] = (poll_url(opened.text, element_id), opened.headers.get("etag"))
    seed_board(services, {"Ada": [("scored", 2.0)], "Bob": [("scored", 1.0)]}, "Round 1")
    for path, element_id, heading in LIVE_BOARDS:
        url, tag = polls[path]
        poll = await client.get(
            url, headers={"HX-Request": "true", **({"If-None-Match": tag} if tag else {})}
        )
        assert poll.status_code == 200, (path, poll.text)
        assert heading.format("Round 1") in poll.text, (path, poll.text)
        polls[path] = (poll_url(poll.text, element_id), poll.headers.get("etag"))
    seed_board(services, {"Ada": [("scored", 1.0)], "Bob": [("scored", 3.0)]}, "Round 2")
    for path, _, heading in LIVE_BOARDS:
        url, tag = polls[path]
        poll = await client.get(
            url, headers={"HX-Request": "true", **({"If-None-Match": tag} if tag else {})}
        )
        assert poll.status_code == 200, (path, poll.text)
        assert heading.format("Round 2") in poll.text, (path, poll.text)


async def test_a_batch_the_visitor_chose_stays_on_the_board_but_not_on_the_projector(
    client, teams, services
):
    await teams.create(name="Ada")
    first = seed_board(services, {"Ada": [("scored", 2.0)]}, "Round 1")
    chosen = await client.get(f"/leaderboard?batch={first}")
    projector = await client.get(f"/leaderboard/projector?batch={first}")
    seed_board(services, {"Ada": [("scored", 3.0)]}, "Round 2")
    poll = await client.get(poll_url(chosen.text, "board"), headers={"HX-Request": "true"})
    assert "<h2>Round 1" in poll.text
    board = (await client.get(f"/api/v1/leaderboard?batch={first}")).json()
    assert board["batch_name"] == "Round 1"
    # The projector is put up once and left alone: it always shows the current board.
    poll = await client.get(poll_url(projector.text, "projector-board"))
    assert "<h1>Round 2</h1>" in poll.text


async def test_a_projector_past_the_last_page_of_a_smaller_batch_starts_from_the_top(
    client, teams, services
):
    await teams.create(name="Ada")
    seed_board(services, {"Ada": [("scored", 2.0)]}, "Round 2")
    # It was on page 3 of a bigger board a moment ago, and its page has not turned yet.
    poll = await client.get(f"/leaderboard/projector?page=3&since={time.time()}")
    assert "Ada" in poll.text and "No team matches." not in poll.text
    assert "page=1" in poll_url(poll.text, "projector-board")
