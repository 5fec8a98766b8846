"""The admin's competition page (settings, final evaluation, reveal) and the phase with
the time left in every page's header."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from portal.core.db import psycopg_conninfo
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.competition import configure, header_badge, set_clock
from tests.fixtures.evaluation import upload
from tests.fixtures.factories import browser_login

PAGE = "/admin/competition"
HX = {"HX-Request": "true"}
T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def query(services, sql: str, *params) -> list[tuple]:
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        return conn.execute(sql, params).fetchall()


def competition_row(services) -> tuple:
    return query(
        services,
        "SELECT name, starts_at, freeze_at, ends_at, public_seeds, private_seeds, "
        "public_batch_id, final_batch_id, final_started_at, revealed_at FROM competition",
    )[0]


def audit_rows(services, prefix: str = "competition.") -> list[tuple]:
    return query(
        services,
        "SELECT action, details FROM audit_log WHERE action LIKE %s ORDER BY id",
        prefix + "%",
    )


def form(csrf: str, **fields: str) -> dict[str, str]:
    values = {
        "name": "Spring Cup",
        "starts_at": "2030-03-01T09:00",
        "freeze_at": "2030-03-05T18:00",
        "ends_at": "2030-03-06T18:00",
        "public_seeds": "1-3, 7",
        "private_seeds": "101-103",
    }
    return {"csrf_token": csrf, **values, **fields}


def field_value(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert found, f"no {name} field"
    return html.unescape(found.group(1))


@pytest.fixture
async def paris(settings):
    """The portal with its competition in Europe/Paris (UTC+1 in March)."""
    application = create_app(settings.model_copy(update={"timezone": "Europe/Paris"}))
    async with application.router.lifespan_context(application):
        yield application


async def test_the_settings_form_saves_local_times_and_seeds_and_audits_them(
    paris, teams_for, services
):
    admin = await teams_for(paris).admin()
    async with make_client(paris) as client:
        csrf = await browser_login(client, admin)
        page = await client.get(PAGE)
        assert "Europe/Paris" in page.text
        assert "every upload again on the new seeds" in page.text
        saved = await client.post(PAGE, data=form(csrf))
        assert saved.status_code == 303
        shown = await client.get(PAGE)

    assert "Every upload is being scored again on the new public seeds" in shown.text
    name, starts, freeze, ends, public, private, public_batch, *_ = competition_row(services)
    assert name == "Spring Cup"
    assert starts == datetime(2030, 3, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert freeze == datetime(2030, 3, 5, 17, 0, tzinfo=UTC)
    assert ends == datetime(2030, 3, 6, 17, 0, tzinfo=UTC)
    assert (public, private) == ([1, 2, 3, 7], [101, 102, 103])
    assert public_batch is not None
    # The form shows back what it saved, in the same words.
    assert field_value(shown.text, "starts_at") == "2030-03-01T09:00"
    assert field_value(shown.text, "public_seeds") == "1-3, 7"
    assert field_value(shown.text, "private_seeds") == "101-103"
    (action, details), *_ = audit_rows(services, "competition.update")
    assert action == "competition.update"
    assert details["name"] == "Spring Cup"
    # The instant, in UTC as stored (09:00 in Paris).
    assert details["starts_at"] == "2030-03-01T08:00:00+00:00"
    assert details["public_seeds"] == [1, 2, 3, 7]
    assert details["private_seeds"] == "3 seeds"  # never the values


async def test_a_local_time_outside_what_utc_can_hold_is_refused_with_the_range(
    paris, teams_for, services
):
    # Midnight of 1 January of year 1 in Paris is still year 0 in UTC: converting it
    # overflowed (a 500) instead of saying which dates the form takes.
    admin = await teams_for(paris).admin()
    before = competition_row(services)
    async with make_client(paris) as client:
        csrf = await browser_login(client, admin)
        response = await client.post(PAGE, data=form(csrf, starts_at="0001-01-01T00:00"))

    assert response.status_code == 422
    assert "Start: must be between" in html.unescape(response.text)
    assert field_value(response.text, "starts_at") == "0001-01-01T00:00"
    assert competition_row(services) == before


async def test_emptying_the_freeze_field_removes_the_freeze(client, teams, services):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    assert (await client.post(PAGE, data=form(csrf))).status_code == 303
    assert competition_row(services)[2] is not None
    assert (await client.post(PAGE, data=form(csrf, freeze_at=""))).status_code == 303
    assert competition_row(services)[2] is None
    assert audit_rows(services, "competition.update")[-1][1] == {"freeze_at": None}


async def test_saving_an_unchanged_form_changes_nothing_even_with_sub_second_instants(
    client, teams, services
):
    admin = await teams.admin()
    # Set through the API, with seconds and microseconds the form does not show.
    await configure(
        client,
        admin,
        starts_at="2030-03-01T08:00:05.123456+00:00",
        ends_at="2030-03-06T17:00:00.5+00:00",
    )
    before = competition_row(services)
    audits_before = audit_rows(services)
    csrf = await browser_login(client, admin)
    page = await client.get(PAGE)
    typed = {
        field: field_value(page.text, field)
        for field in ("name", "starts_at", "freeze_at", "ends_at", "public_seeds", "private_seeds")
    }
    assert typed["starts_at"] == "2030-03-01T08:00:05"
    assert (await client.post(PAGE, data={"csrf_token": csrf, **typed})).status_code == 303
    assert competition_row(services) == before
    assert audit_rows(services) == audits_before


@pytest.mark.parametrize(
    ("fields", "says", "status"),
    [
        (
            {"starts_at": "2030-03-06T18:00", "ends_at": "2030-03-01T09:00", "freeze_at": ""},
            "must be after the start",
            409,
        ),
        ({"freeze_at": "2030-03-07T09:00"}, "The freeze (2030-03-07T09:00:00+00:00) must be", 409),
        ({"public_seeds": "1, two, 3"}, "Public seeds: 'two' is not a seed", 422),
        ({"public_seeds": "1-3, 2"}, "Public seeds: each seed may appear only once", 422),
        ({"private_seeds": "5, 5"}, "Private seeds: each seed may appear only once", 422),
        ({"name": "Spring\x00Cup"}, "Name: must not contain the NUL character (U+0000)", 422),
        ({"ends_at": "next tuesday"}, "End: 'next tuesday' is not a date and time", 422),
        ({"starts_at": ""}, "Start: choose a date and time", 422),
        ({"starts_at": "0001-01-01T00:00+05:00"}, "Start: must be between", 422),
    ],
    ids=[
        "end-before-start",
        "freeze-after-end",
        "seed-not-a-number",
        "duplicate-public-seed",
        "duplicate-private-seed",
        "nul-in-name",
        "end-not-a-date",
        "no-start",
        "start-before-year-1-in-utc",
    ],
)
async def test_a_refused_setting_comes_back_typed_with_the_reason_and_changes_nothing(
    client, teams, services, fields, says, status
):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    before = competition_row(services)
    audits_before = audit_rows(services)
    typed = form(csrf, **{"name": "Autumn Cup", **fields})

    response = await client.post(PAGE, data=typed)

    assert response.status_code == status
    assert 'role="alert"' in response.text and says in html.unescape(response.text)
    for field in ("name", "starts_at", "freeze_at", "ends_at", "public_seeds", "private_seeds"):
        assert field_value(response.text, field) == typed[field].replace("\x00", "\ufffd")
    assert competition_row(services) == before
    assert audit_rows(services) == audits_before
    assert query(services, "SELECT count(*) FROM evaluation_batch") == [(0,)]


async def test_only_admins_reach_the_competition_page(client, teams, services):
    visitor = await client.get(PAGE)
    assert visitor.status_code == 303
    assert visitor.headers["location"] == "/login?next=%2Fadmin%2Fcompetition"

    participant = await teams.create()
    csrf = await browser_login(client, participant)
    for response in (
        await client.get(PAGE),
        await client.post(PAGE, data=form(csrf)),
        await client.post(f"{PAGE}/final", data={"csrf_token": csrf}),
        await client.post(f"{PAGE}/reveal", data={"csrf_token": csrf, "confirmed": "true"}),
    ):
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert "needs an admin account" in (await client.get("/login")).text
    assert competition_row(services)[0] == "Competition"
    assert audit_rows(services) == []


async def test_the_admin_navigation_links_the_competition_page(client, teams):
    await browser_login(client, await teams.admin())
    page = await client.get("/admin/teams")
    assert '<a href="/admin/competition"' in page.text


async def test_start_final_is_refused_before_the_end_with_the_reason(app, client, teams, services):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    await configure(client, admin, starts_at="2030-03-01T00:00:00Z", ends_at="2030-03-03T00:00:00Z")
    set_clock(app, datetime(2030, 3, 2, 20, 0, tzinfo=UTC))

    page = await client.get(PAGE)
    start = re.search(r"<button[^>]*>Start final evaluation</button>", page.text)
    assert start and "disabled" in start.group(0)
    assert "Available after the end, Mar 3, 2030, 00:00 UTC: in 4 h 0 min." in page.text

    refused = await client.post(f"{PAGE}/final", data={"csrf_token": csrf})
    assert refused.status_code == 303
    shown = await client.get(refused.headers["location"])
    assert "The competition is still open until 2030-03-03T00:00:00+00:00." in shown.text
    assert competition_row(services)[7:9] == (None, None)
    assert audit_rows(services, "competition.final") == []


async def final_started(app, client, teams) -> tuple:
    """A competition after its end whose final evaluation has started (no worker: its
    runs wait in the queue). The admin, its CSRF token and the number of runs."""
    admin = await teams.admin()
    alpha, beta = await teams.create(), await teams.create()
    for team, source in ((alpha, b"print(1)\n"), (beta, b"print(2)\n")):
        await upload(client, team, "solution.py", source)
    await configure(
        client,
        admin,
        starts_at="2030-03-01T00:00:00Z",
        ends_at="2030-03-03T00:00:00Z",
        private_seeds=[11, 12, 13],
    )
    set_clock(app, datetime(2030, 3, 3, 1, 0, tzinfo=UTC))
    csrf = await browser_login(client, admin)
    page = await client.get(PAGE)
    start = re.search(r"<button[^>]*>Start final evaluation</button>", page.text)
    assert start and "disabled" not in start.group(0)
    started = await client.post(f"{PAGE}/final", data={"csrf_token": csrf})
    assert started.status_code == 303
    return admin, csrf, 2 * 3


async def test_the_final_evaluation_starts_from_the_page_and_shows_live_progress(
    app, client, teams, services
):
    _, _, runs = await final_started(app, client, teams)
    page = await client.get(PAGE)
    assert "Final evaluation started" in page.text
    final_batch = competition_row(services)[7]
    assert f'href="/admin/batches/{final_batch}"' in page.text
    assert f"0 of {runs} runs done" in page.text
    assert f"queued: {runs}" in page.text
    # While it runs, the progress polls itself as a fragment (no header, no layout).
    assert 'id="final-live"' in page.text and 'hx-trigger="every 2s"' in page.text
    fragment = await client.get(PAGE, headers=HX)
    assert fragment.text.lstrip().startswith('<section class="card" id="final-live"')
    assert "hx-trigger" in fragment.text and "phase-clock" not in fragment.text
    # The action, then the phases it passed: those the clock reached unswept (no worker
    # here), ending with the end, then the final the admin started.
    rows = audit_rows(services)
    actions = [action for action, _ in rows]
    after_start = rows[actions.index("competition.final_start") + 1 :]
    passed = [(a, d["to"]) for a, d in after_start]
    assert passed[-2:] == [("competition.phase", "ended"), ("competition.phase", "final")]


async def test_the_reveal_is_refused_while_the_final_evaluation_runs(app, client, teams, services):
    _, csrf, runs = await final_started(app, client, teams)
    page = await client.get(PAGE)
    reveal = re.search(r"<button[^>]*>Reveal results</button>", page.text)
    assert reveal and "disabled" in reveal.group(0)
    assert f"still running: 0 of {runs} runs done" in page.text
    assert 'href="/leaderboard/projector/reveal"' in page.text

    # Without the confirmation the first press only asks; confirmed, it is refused.
    asked = await client.post(f"{PAGE}/reveal", data={"csrf_token": csrf})
    assert asked.status_code == 303 and asked.headers["location"].startswith(
        f"{PAGE}?confirm=reveal"
    )
    refused = await client.post(f"{PAGE}/reveal", data={"csrf_token": csrf, "confirmed": "true"})
    shown = await client.get(refused.headers["location"])
    assert f"The final evaluation is still running: 0 of {runs} runs done." in shown.text
    assert competition_row(services)[9] is None
    assert audit_rows(services, "competition.reveal") == []


async def test_the_reveal_asks_for_confirmation_then_reveals_a_finished_final(
    app, client, teams, services
):
    _, csrf, _ = await final_started(app, client, teams)
    # The runs' outcome as a worker records it (the Docker path is tested elsewhere).
    final_batch = competition_row(services)[7]
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        conn.execute(
            "UPDATE evaluation_run SET status = 'scored', score = 1 WHERE batch_id = %s",
            (final_batch,),
        )
    page = await client.get(PAGE)
    assert "hx-trigger" not in page.text  # finished: nothing left to poll
    reveal = re.search(r"<button[^>]*>Reveal results</button>", page.text)
    assert reveal and "disabled" not in reveal.group(0)

    asked = await client.post(f"{PAGE}/reveal", data={"csrf_token": csrf})
    confirm = await client.get(asked.headers["location"])
    assert "Reveal the final results now?" in confirm.text
    assert 'name="confirmed" value="true"' in confirm.text
    assert competition_row(services)[9] is None

    done = await client.post(f"{PAGE}/reveal", data={"csrf_token": csrf, "confirmed": "true"})
    shown = await client.get(done.headers["location"])
    assert "Results revealed: the final board is public." in shown.text
    assert competition_row(services)[9] is not None
    assert header_badge(shown.text) == "Results revealed"
    assert audit_rows(services, "competition.reveal")


async def test_every_page_shows_the_phase_and_the_time_left_and_follows_the_clock(
    app, client, teams
):
    admin = await teams.admin()
    team = await teams.create()
    await configure(
        client,
        admin,
        starts_at=(T0 - timedelta(days=1)).isoformat(),
        freeze_at=(T0 + timedelta(hours=1)).isoformat(),
        ends_at=(T0 + timedelta(days=3, hours=5)).isoformat(),
    )
    set_clock(app, T0)
    pages = ("/login", "/leaderboard")
    for path in pages:
        page = (await client.get(path)).text
        assert header_badge(page) == "Open · freezes in 1 h 0 min"
        assert '<time data-phase-left datetime="2030-03-01T13:00:00+00:00"' in page
        assert 'title="Freezes Mar 1, 2030, 13:00 UTC"' in page

    set_clock(app, T0 + timedelta(hours=1, seconds=1))  # past freeze_at
    for path in pages:
        page = (await client.get(path)).text
        assert header_badge(page) == "Frozen · ends in 3 d 3 h"

    await browser_login(client, team)
    dashboard = (await client.get("/dashboard")).text
    assert header_badge(dashboard) == "Frozen · ends in 3 d 3 h"
    set_clock(app, T0 + timedelta(days=3, hours=4, minutes=58, seconds=30))
    assert header_badge((await client.get("/dashboard")).text) == "Frozen · ends in 1 min 30 s"
    set_clock(app, T0 + timedelta(days=3, hours=5))
    assert header_badge((await client.get("/dashboard")).text) == "Ended"


async def test_before_the_start_the_header_counts_down_to_it(app, client, teams):
    await configure(
        client,
        await teams.admin(),
        starts_at=(T0 + timedelta(minutes=5)).isoformat(),
        ends_at=(T0 + timedelta(days=1)).isoformat(),
    )
    set_clock(app, T0)
    assert header_badge((await client.get("/login")).text) == "Starts in 5 min 0 s"


async def test_fragments_and_the_projector_carry_no_header(client):
    assert "phase-clock" in (await client.get("/leaderboard")).text
    assert "phase-clock" not in (await client.get("/leaderboard", headers=HX)).text
    assert "phase-clock" not in (await client.get("/leaderboard/projector")).text
