"""The projector's reveal page: admin only, what it waits for, and the data it steps
through (the ceremony itself runs in a browser: tests/e2e/test_reveal_browser.py)."""

from __future__ import annotations

import json
import re

import pytest
import redis as sync_redis

from portal.leaderboard.refresh import REFRESHED_AT_KEY
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login
from tests.fixtures.final_standings import (
    FINAL_SCORES,
    LATE,
    SHAKE_UP,
    finish_final,
    seed_final,
)
from tests.fixtures.leaderboard import refresh_now

REVEAL = "/leaderboard/projector/reveal"


async def create_shake_up_teams(teams):
    admin = await teams.admin(name="Organizers")
    created = {name: await teams.create(name=name) for name in SHAKE_UP}
    return admin, created


def reveal_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="reveal-data">(.*?)</script>', html)
    assert match, html
    return json.loads(match.group(1))


async def test_visitors_and_participants_cannot_open_the_reveal_or_see_final_scores(
    app, client, teams, services
):
    _, created = await create_shake_up_teams(teams)
    seed_final(services, SHAKE_UP)
    participant = created["Bo"]
    async with make_client(app) as team_browser:
        await browser_login(team_browser, participant)
        for http, headers in (
            (client, {}),
            (client, {"HX-Request": "true"}),
            (team_browser, {}),
            (team_browser, {"HX-Request": "true"}),
            (client, participant.auth),  # the team's API token
        ):
            response = await http.get(REVEAL, headers=headers)
            assert response.status_code in (303, 204), response.text
            if response.status_code == 303:
                assert response.headers["location"].startswith("/login?next=")
            else:  # HTMX is told to go to the login page rather than shown one
                assert response.headers["HX-Redirect"].startswith("/login?next=")
            for score in FINAL_SCORES:
                assert score not in response.text
    # Nothing was revealed by trying.
    assert (await client.get("/api/v1/competition")).json()["phase"] == "final"


async def test_reveal_page_holds_the_audiences_order_and_the_final_standings(
    app, client, teams, services
):
    admin, created = await create_shake_up_teams(teams)
    seed_final(services, SHAKE_UP)
    await browser_login(client, admin)
    page = await client.get(REVEAL)
    assert page.status_code == 200
    assert "no-store" in page.headers["cache-control"]
    data = reveal_data(page.text)
    ids = {team.id: name for name, team in created.items()}
    # The audience saw the frozen board; LATE uploaded after the freeze: last, "new".
    assert data["audience_board"] == "frozen"
    assert [ids[i] for i in data["public_order"]] == ["Ada", "Bo", "Cy", "Dee", "Eve", LATE]
    final = [(ids[t["team_id"]], t["final_rank"], t["final_score"]) for t in data["teams"]]
    # Dee and Eve tie; the view's order (team id) decides who is revealed first (Eve).
    assert final == [
        ("Bo", 1, 0.9517),
        ("Cy", 2, 0.8533),
        ("Dee", 3, 0.5071),
        ("Eve", 3, 0.5071),
        ("Ada", 5, 0.4129),
        (LATE, 6, 0.2243),
    ]
    cy = next(t for t in data["teams"] if ids[t["team_id"]] == "Cy")
    # Its later, better upload came after the freeze: the audience saw 0.7 in third.
    assert (cy["public_rank"], cy["public_score"]) == (3, 0.7)
    late = next(t for t in data["teams"] if ids[t["team_id"]] == LATE)
    assert late["public_rank"] is None and late["public_score"] is None
    assert data["revealed"] is False
    assert data["interval_seconds"] == 4


async def test_without_a_freeze_the_ceremony_starts_from_the_public_board(client, teams, services):
    admin, created = await create_shake_up_teams(teams)
    seed_final(services, SHAKE_UP, freeze=False)
    await browser_login(client, admin)
    data = reveal_data((await client.get(f"{REVEAL}?interval=2.5")).text)
    ids = {team.id: name for name, team in created.items()}
    assert data["audience_board"] == "public"
    # Cy's 0.99 after the freeze time counts now: first on the public board.
    assert [ids[i] for i in data["public_order"]] == ["Cy", "Ada", "Bo", "Dee", "Eve", LATE]
    assert data["interval_seconds"] == 2.5


async def test_reveal_page_waits_for_the_final_evaluation_and_then_loads_the_ceremony(
    client, teams, services
):
    admin, _ = await create_shake_up_teams(teams)
    await browser_login(client, admin)
    before = await client.get(REVEAL)
    assert "The final evaluation has not started yet" in before.text
    assert 'hx-trigger="every 2s"' in before.text
    assert "reveal-data" not in before.text

    seed_final(services, SHAKE_UP, finished=False)
    running = await client.get(REVEAL, headers={"HX-Request": "true"})
    assert "The final evaluation is running: 5 of 6 runs done." in running.text
    assert 'value="5" max="6"' in running.text
    assert 'hx-trigger="every 2s"' in running.text
    for score in FINAL_SCORES:
        assert score not in running.text

    # The last run ends; until the boards show it, the page keeps waiting.
    finish_final(services, SHAKE_UP["Ada"][0].final)
    stale = await client.get(REVEAL, headers={"HX-Request": "true"})
    assert "The final evaluation has finished; the boards are being updated." in stale.text

    refresh_now(services)
    ready = await client.get(f"{REVEAL}?interval=3", headers={"HX-Request": "true"})
    # A swap would not run the ceremony's script: HTMX loads the whole page instead.
    assert ready.headers["HX-Redirect"] == f"{REVEAL}?interval=3"
    assert reveal_data((await client.get(REVEAL)).text)["teams"]


async def test_boards_refreshed_before_the_last_result_are_not_revealed(client, teams, services):
    admin, _ = await create_shake_up_teams(teams)
    seed_final(services, SHAKE_UP)
    await browser_login(client, admin)
    redis = sync_redis.Redis.from_url(services.redis_url)
    try:
        redis.set(REFRESHED_AT_KEY, "1000.0")  # a refresh long before the final finished
    finally:
        redis.close()
    page = await client.get(REVEAL)
    assert "the boards are being updated" in page.text
    assert "reveal-data" not in page.text


@pytest.mark.parametrize("interval", ["0", "-1", "601", "soon"])
async def test_a_bad_auto_play_interval_is_refused_with_what_to_send(client, teams, interval):
    admin = await teams.admin()
    await browser_login(client, admin)
    response = await client.get(f"{REVEAL}?interval={interval}")
    assert response.status_code == 422
    assert "interval" in response.text


async def test_a_team_name_with_markup_stays_text_in_the_ceremony_data(client, teams, services):
    admin = await teams.admin(name="Organizers")
    hostile = "</script><script src=/x.js></script> & 'quotes'"
    await teams.create(name=hostile)
    seed_final(services, {hostile: [SHAKE_UP["Bo"][0]]})
    await browser_login(client, admin)
    page = (await client.get(REVEAL)).text
    assert "<script src=/x.js>" not in page
    assert [team["name"] for team in reveal_data(page)["teams"]] == [hostile]
