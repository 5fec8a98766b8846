"""The competition's boards: ranking rules, the freeze, the final board and the reveal,
who sees what, the cheap 304 poll, the projector and a team's public page."""

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import quote

import pytest

from tests.fixtures.competition import configure, set_clock, wait_for_public_score
from tests.fixtures.evaluation import example, running_eval_worker, upload
from tests.fixtures.factories import browser_login
from tests.fixtures.leaderboard import (
    refresh_now,
    seed_board,
    seed_final_scores,
    seed_public_scores,
    set_competition,
)

NOW = datetime.now(UTC).replace(microsecond=0)
FREEZE = NOW - timedelta(hours=1)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def board_rows(board: dict) -> list[tuple]:
    return [(r["rank"], r["team_name"], r["score"], r["entries"]) for r in board["items"]]


async def test_public_board_ranks_best_public_scores_and_a_tie_goes_to_the_earlier_upload(
    client, teams, services
):
    for name in ("Ada", "Bob", "Cy", "Dee"):
        await teams.create(name=name)
    admin = await teams.admin(name="Organizer")
    seed_public_scores(
        services,
        {
            "Ada": [(3.0, ago(50)), (4.0, ago(10))],  # best 4.0, uploaded 10 min ago
            "Bob": [(4.0, ago(20)), (1.0, ago(5))],  # best 4.0, uploaded earlier: ahead
            "Cy": [(5.0, ago(30))],
            "Dee": [(None, ago(1))],  # still being evaluated: last, unranked
            "Organizer": [(99.0, ago(40))],  # admins are never on a board
        },
    )
    response = await client.get("/api/v1/leaderboard")  # public: no login
    board = response.json()
    assert board_rows(board) == [
        (1, "Cy", 5.0, 1),
        (2, "Bob", 4.0, 2),
        (3, "Ada", 4.0, 2),
        (None, "Dee", None, 1),
    ]
    assert board["board"] == "public" and board["phase"] == "open"
    assert board["frozen_at"] is None and board["final_progress"] is None
    assert board["competition"] == "Competition" and board["total"] == 4
    assert datetime.fromisoformat(board["items"][1]["last_upload_at"]) == ago(5)
    page = await client.get("/leaderboard")
    assert "Organizer" not in page.text and admin.team.name not in page.text
    assert page.text.index("Cy") < page.text.index("Bob") < page.text.index("Ada")


async def test_a_board_before_the_first_score_says_so(client):
    board = (await client.get("/api/v1/leaderboard")).json()
    assert board["items"] == [] and board["board"] == "public" and board["phase"] == "open"
    page = await client.get("/leaderboard")
    assert page.status_code == 200 and "No scores yet" in page.text


async def test_the_freeze_hides_later_uploads_from_everyone_but_the_admins_live_board_and_the_team(
    client, teams, services
):
    ada = await teams.create(name="Ada")
    bob = await teams.create(name="Bob")
    admin = await teams.admin()
    second = timedelta(seconds=1)
    ids = seed_public_scores(
        services,
        {
            "Ada": [(2.0, FREEZE - second)],  # just before the freeze: on the frozen board
            "Bob": [(1.0, FREEZE - 10 * second), (9.0, FREEZE + second)],  # just after: hidden
        },
    )
    set_competition(services, freeze_at=FREEZE)
    frozen = [(1, "Ada", 2.0, 1), (2, "Bob", 1.0, 1)]
    for viewer in ({}, ada.auth, bob.auth, admin.auth):  # admins too: what the room sees
        board = (await client.get("/api/v1/leaderboard", headers=viewer)).json()
        assert board_rows(board) == frozen, viewer
        assert board["board"] == "frozen" and board["phase"] == "frozen"
        assert datetime.fromisoformat(board["frozen_at"]) == FREEZE
    live = (await client.get("/api/v1/leaderboard?board=live", headers=admin.auth)).json()
    assert live["board"] == "live"
    assert board_rows(live) == [(1, "Bob", 9.0, 2), (2, "Ada", 2.0, 1)]
    for viewer in ({}, bob.auth):
        refused = await client.get("/api/v1/leaderboard?board=live", headers=viewer)
        assert refused.status_code == 403, refused.text
        assert "admins only" in refused.json()["error"]["message"]
    # The team itself still sees its new score.
    own = await client.get(f"/api/v1/submissions/{ids['Bob'][1]}", headers=bob.auth)
    assert own.json()["public_score"] == 9.0
    page = await client.get("/leaderboard")
    assert f"Frozen at {FREEZE:%H:%M} (UTC)" in page.text
    assert "9.0000" not in page.text


async def test_final_board_is_admin_only_until_the_reveal_then_public_with_the_public_rank(
    client, teams, services
):
    ada = await teams.create(name="Ada")
    await teams.create(name="Bob")
    await teams.create(name="Cy")
    admin = await teams.admin()
    ids = seed_public_scores(
        services,
        {"Ada": [(3.0, ago(30))], "Bob": [(2.0, ago(20))], "Cy": [(1.0, ago(10))]},
    )
    set_competition(services, ends_at=NOW - timedelta(minutes=5))
    seed_final_scores(services, {ids["Ada"][0]: 1.0, ids["Bob"][0]: 5.0, ids["Cy"][0]: 3.0})
    for viewer in ({}, ada.auth):
        refused = await client.get("/api/v1/leaderboard?board=final", headers=viewer)
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "The final results are not revealed yet."
        # The current board is still the public one, and says nothing of the final.
        current = (await client.get("/api/v1/leaderboard", headers=viewer)).json()
        assert current["board"] == "public" and current["phase"] == "final"
        assert [r["public_rank"] for r in current["items"]] == [None, None, None]
    page = await client.get("/leaderboard?board=final")
    assert page.status_code == 403 and "not revealed yet" in page.text
    before = (await client.get("/api/v1/leaderboard?board=final", headers=admin.auth)).json()
    assert before["board"] == "final" and before["final_progress"] is not None

    set_competition(services, revealed_at=NOW)
    final = (await client.get("/api/v1/leaderboard")).json()  # the current board now
    assert final["board"] == "final" and final["phase"] == "revealed"
    assert [
        (r["rank"], r["team_name"], r["score"], r["public_rank"], r["public_score"])
        for r in final["items"]
    ] == [(1, "Bob", 5.0, 2, 2.0), (2, "Cy", 3.0, 3, 1.0), (3, "Ada", 1.0, 1, 3.0)]
    assert (await client.get("/api/v1/leaderboard?board=final")).status_code == 200
    page = await client.get("/leaderboard")
    assert "▲ 1" in page.text and "▼ 2" in page.text  # the shake-up


async def test_a_batch_ranking_is_an_admin_view(client, teams, services):
    for name in ("Ada", "Bob", "Cy", "Dee", "Eve"):
        await teams.create(name=name)
    participant = await teams.create(name="Fay")
    admin = await teams.admin()
    batch = seed_board(
        services,
        {
            "Ada": [("scored", 4.0), ("scored", 4.0)],  # 4.0
            "Bob": [("scored", 5.0), ("scored", 3.0)],  # 4.0, later submission than Ada
            "Cy": [("scored", 9.0), ("timeout", None)],  # 4.5: the timeout counts as 0
            "Dee": [("scored", 1.0), ("running", None)],  # not all runs ended: no score yet
            "Eve": [("failed", None), ("failed", None)],  # 0.0
        },
    )
    for viewer in ({}, participant.auth):
        refused = await client.get(f"/api/v1/leaderboard?batch={batch}", headers=viewer)
        assert refused.status_code == 403
        assert "admins only" in refused.json()["error"]["message"]
    board = (await client.get(f"/api/v1/leaderboard?batch={batch}", headers=admin.auth)).json()
    assert [
        (r["rank"], r["team_name"], r["score"], r["runs_done"], r["runs_total"])
        for r in board["items"]
    ] == [
        (1, "Cy", 4.5, 2, 2),
        (2, "Ada", 4.0, 2, 2),
        (2, "Bob", 4.0, 2, 2),
        (4, "Eve", 0.0, 2, 2),
        (None, "Dee", None, 1, 2),
    ]
    assert board["batch_id"] == batch and board["runs_done"] == 9 and board["runs_total"] == 10
    # A batch is not the competition: its results are on no public board.
    assert (await client.get("/api/v1/leaderboard")).json()["items"] == []


async def test_a_deactivated_team_leaves_the_board_at_once(client, teams, services, settings):
    await teams.create(name="Ada")
    bob = await teams.create(name="Bob")
    admin = await teams.admin()
    seed_public_scores(services, {"Ada": [(1.0, ago(20))], "Bob": [(2.0, ago(10))]})
    # A worker to run the refresh the deactivation asks for (no evaluations here).
    with running_eval_worker(settings.model_copy(update={"eval_runner": "process"})):
        changed = await client.patch(
            f"/api/v1/teams/{bob.id}", headers=admin.auth, json={"is_active": False}
        )
        assert changed.status_code == 200
        for _ in range(100):
            board = (await client.get("/api/v1/leaderboard")).json()
            if [r["team_name"] for r in board["items"]] == ["Ada"]:
                break
            await asyncio.sleep(0.1)
    assert board_rows(board) == [(1, "Ada", 1.0, 1)]
    assert (await client.get(f"/leaderboard/teams/{bob.id}")).status_code == 404


async def test_a_matching_etag_answers_304_until_the_board_or_the_clock_moves(
    app, client, teams, services
):
    await teams.create(name="Ada")
    seed_public_scores(services, {"Ada": [(2.0, ago(90))]})
    set_competition(services, freeze_at=FREEZE)
    set_clock(app, FREEZE - timedelta(minutes=1))
    for path, headers in (
        ("/api/v1/leaderboard", {}),
        ("/leaderboard", {"HX-Request": "true"}),
    ):
        first = await client.get(path, headers=headers)
        tag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        again = await client.get(path, headers={**headers, "If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        set_clock(app, FREEZE + timedelta(minutes=1))  # the clock passes the freeze
        frozen = await client.get(path, headers={**headers, "If-None-Match": tag})
        assert frozen.status_code == 200 and frozen.headers["etag"] != tag
        assert "frozen" in frozen.text.lower()
        tag = frozen.headers["etag"]
        refresh_now(services)  # new results landed
        changed = await client.get(path, headers={**headers, "If-None-Match": tag})
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        set_clock(app, FREEZE - timedelta(minutes=1))


async def test_pollers_with_an_old_etag_get_the_same_board_as_a_first_visit(
    client, teams, services
):
    await teams.create(name="Ada")
    seed_public_scores(services, {"Ada": [(2.0, ago(30))]})
    stale = (await client.get("/leaderboard", headers={"HX-Request": "true"})).headers["etag"]
    seed_public_scores(services, {"Ada": [(3.0, ago(20))]})
    fresh = await client.get("/leaderboard", headers={"HX-Request": "true"})
    polled = await client.get(
        "/leaderboard", headers={"HX-Request": "true", "If-None-Match": stale}
    )
    assert polled.status_code == 200 and polled.text == fresh.text
    assert polled.headers["etag"] == fresh.headers["etag"] != stale
    assert "3.0000" in polled.text


async def test_admins_get_their_own_etag_and_tabs(client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Ada")
    seed_public_scores(services, {"Ada": [(2.0, ago(30))]})
    visitor = await client.get("/leaderboard", headers={"HX-Request": "true"})
    await browser_login(client, admin)
    admins = await client.get("/leaderboard", headers={"HX-Request": "true"})
    assert admins.headers["etag"] != visitor.headers["etag"]
    assert "board=live" in admins.text and "board=live" not in visitor.text


async def test_search_and_pagination_on_the_public_board(client, teams, services):
    for n in range(7):
        await teams.create(name=f"Robot {n}")
    seed_public_scores(services, {f"Robot {n}": [(float(n), ago(10 + n))] for n in range(7)})
    page = (await client.get("/api/v1/leaderboard?size=3&page=2")).json()
    assert page["total"] == 7
    assert [r["team_name"] for r in page["items"]] == ["Robot 3", "Robot 2", "Robot 1"]
    found = (await client.get("/api/v1/leaderboard?q=robot 6")).json()
    assert [r["team_name"] for r in found["items"]] == ["Robot 6"]
    html = await client.get("/leaderboard?q=nobody")
    assert "No team matches" in html.text


async def test_a_search_takes_percent_underscore_and_backslash_literally(client, teams, services):
    # LIKE's wildcards used to reach the query: `_` or `%` matched every team.
    names = ("100% Robots", "Team_1", "TeamX1", "Back\\slash")
    for name in names:
        await teams.create(name=name)
    admin = await teams.admin()
    seed_public_scores(services, {name: [(1.0, ago(10))] for name in names})
    batch = seed_board(services, {name: [("scored", 1.0), ("scored", 1.0)] for name in names})
    boards = {
        "public board": ("/api/v1/leaderboard?q=", {}),
        "batch ranking": (f"/api/v1/leaderboard?batch={batch}&q=", admin.auth),
    }
    for what, (url, headers) in boards.items():
        for typed, expected in (("%", ["100% Robots"]), ("team_", ["Team_1"]), ("\\", [names[3]])):
            found = (await client.get(url + quote(typed), headers=headers)).json()
            assert [r["team_name"] for r in found["items"]] == expected, (what, typed)
    listed = (await client.get("/api/v1/teams?q=" + quote("_1"), headers=admin.auth)).json()
    assert [item["name"] for item in listed["items"]] == ["Team_1"]


async def test_a_team_page_shows_only_its_public_record(client, teams, services):
    ada = await teams.create(name="Ada")
    admin = await teams.admin()
    gone = await teams.create(name="Gone")
    ids = seed_public_scores(
        services,
        {"Ada": [(1.5, FREEZE - timedelta(minutes=9)), (2.5, FREEZE - timedelta(minutes=5))]},
    )
    seed_public_scores(services, {"Ada": [(7.25, FREEZE + timedelta(minutes=5))]})
    seed_final_scores(services, {ids["Ada"][0]: 6.125})
    set_competition(services, freeze_at=FREEZE)
    page = await client.get(f"/leaderboard/teams/{ada.id}")
    assert page.status_code == 200
    assert "2.5000" in page.text and "<polyline" in page.text
    # Nothing after the freeze, nothing private (the final score is not revealed).
    assert "7.2500" not in page.text and "6.1250" not in page.text
    assert f"Frozen at {FREEZE:%H:%M}" in page.text
    await client.patch(f"/api/v1/teams/{gone.id}", headers=admin.auth, json={"is_active": False})
    for team_id in (admin.id, gone.id, 99999):
        assert (await client.get(f"/leaderboard/teams/{team_id}")).status_code == 404


def poll_url(html: str, element_id: str) -> str:
    """The URL a live board polls, as the browser reads it from the element's hx-get."""
    match = re.search(rf'id="{element_id}"[^>]*?hx-get="([^"]*)"', html, re.DOTALL)
    assert match, f"#{element_id} does not poll"
    return unescape(match.group(1))


LIVE_BOARDS = [("/leaderboard", "board"), ("/leaderboard/projector", "projector-board")]


async def test_a_board_opened_before_any_score_follows_the_competition_to_the_reveal(
    client, teams, services
):
    """Opened before anything exists, never reloaded: the first scores, the freeze and
    the final results all arrive through the same poll."""
    await teams.create(name="Ada")
    await teams.create(name="Bob")
    polls = {}
    for path, element_id in LIVE_BOARDS:
        opened = await client.get(path)
        assert opened.status_code == 200
        assert "No scores yet" in opened.text and "Competition" in opened.text
        polls[path] = poll_url(opened.text, element_id)

    async def poll_all(expect: str) -> None:
        for path, element_id in LIVE_BOARDS:
            poll = await client.get(polls[path], headers={"HX-Request": "true"})
            assert poll.status_code == 200, (path, poll.text)
            assert expect in poll.text, (path, poll.text)
            polls[path] = poll_url(poll.text, element_id)

    ids = seed_public_scores(services, {"Ada": [(2.0, ago(90))], "Bob": [(1.0, ago(80))]})
    await poll_all('data-board="public"')
    set_competition(services, freeze_at=FREEZE)
    await poll_all(f"Frozen at {FREEZE:%H:%M} (UTC)")
    set_competition(services, ends_at=NOW - timedelta(minutes=1))
    seed_final_scores(services, {ids["Ada"][0]: 1.0, ids["Bob"][0]: 3.0})
    await poll_all('data-board="frozen"')  # the final is not revealed yet
    set_competition(services, revealed_at=NOW)
    await poll_all('data-board="final"')


async def test_a_projector_past_the_last_page_starts_from_the_top(client, teams, services):
    await teams.create(name="Ada")
    seed_public_scores(services, {"Ada": [(2.0, ago(9))]})
    # It was on page 3 of a bigger board a moment ago, and its page has not turned yet.
    poll = await client.get(f"/leaderboard/projector?page=3&since={time.time()}")
    assert "Ada" in poll.text and "No scores yet" not in poll.text
    assert "page=1" in poll_url(poll.text, "projector-board")


async def test_an_upload_scored_by_a_worker_shows_on_the_next_poll(client, teams, eval_worker):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[1, 2])
    uploaded = {}
    for name, file in (("Fast", "tsp_two_opt.py"), ("Slow", "tsp_input_order.py")):
        team = await teams.create(name=name)
        uploaded[name] = (team, await upload(client, team, file, example(file)))
    for team, submission_id in uploaded.values():
        await wait_for_public_score(client, team, submission_id)
    tag, board = None, {}
    for _ in range(100):
        response = await client.get(
            "/api/v1/leaderboard", headers={"If-None-Match": tag} if tag else {}
        )
        if response.status_code == 200:
            tag, board = response.headers["etag"], response.json()
            if all(r["score"] is not None for r in board["items"]) and board["total"] == 2:
                break
        await asyncio.sleep(0.1)
    assert [r["team_name"] for r in board["items"]] == ["Fast", "Slow"]
    assert [r["rank"] for r in board["items"]] == [1, 2]


@pytest.mark.parametrize("since", ["inf", "nan", "1e308"])
async def test_the_projector_refuses_a_page_start_it_could_never_turn_from(client, since):
    response = await client.get(f"/leaderboard/projector?since={since}")
    assert response.status_code == 422


async def test_after_a_freeze_the_final_shake_up_compares_with_the_frozen_board(
    client, teams, services
):
    """The reveal starts from the board the room saw (frozen); the final board's public
    rank is the same one, so a team is never up a place in one and level in the other."""
    for name in ("Ada", "Bob"):
        await teams.create(name=name)
    ids = seed_public_scores(
        services,
        # Bob was second at the freeze and then uploaded the best public score.
        {"Ada": [(3.0, ago(30))], "Bob": [(2.0, ago(25)), (9.0, ago(5))]},
    )
    set_competition(services, freeze_at=ago(10), ends_at=NOW - timedelta(minutes=1))
    seed_final_scores(services, {ids["Ada"][0]: 1.0, ids["Bob"][1]: 5.0})
    set_competition(services, revealed_at=NOW)
    final = (await client.get("/api/v1/leaderboard")).json()
    assert [(r["team_name"], r["rank"], r["public_rank"]) for r in final["items"]] == [
        ("Bob", 1, 2),
        ("Ada", 2, 1),
    ]


async def test_the_unchanged_poll_shortcut_never_answers_what_the_route_would_refuse(
    client, teams, services
):
    """Unchanged visitor polls are answered before routing; a tag that is not this
    viewer's, or a board it may not see, still goes to the route."""
    await teams.create(name="Ada")
    admin = await teams.admin()
    seed_public_scores(services, {"Ada": [(2.0, ago(30))]})
    set_competition(services, ends_at=NOW - timedelta(minutes=5))
    seed_final_scores(services, {})
    fragment = {"HX-Request": "true"}
    visitor_tag = (await client.get("/leaderboard", headers=fragment)).headers["etag"]
    polled = await client.get("/leaderboard", headers={**fragment, "If-None-Match": visitor_tag})
    assert polled.status_code == 304 and polled.headers["etag"] == visitor_tag
    assert polled.headers["x-request-id"] and polled.headers["cache-control"] == "no-cache"

    await browser_login(client, admin)
    admin_final = await client.get("/leaderboard?board=final", headers=fragment)
    assert admin_final.status_code == 200
    final_tag = admin_final.headers["etag"]
    client.cookies.clear()
    # A visitor replaying the admin's tag of the unrevealed final board is refused.
    replayed = await client.get(
        "/leaderboard?board=final", headers={**fragment, "If-None-Match": final_tag}
    )
    assert replayed.status_code == 403
    # A malformed query is the route's to refuse, whatever the tag.
    for query in ("?page=0", "?board=nope", "?page=x"):
        odd = await client.get(
            f"/leaderboard{query}", headers={**fragment, "If-None-Match": visitor_tag}
        )
        assert odd.status_code == 422, (query, odd.status_code)
