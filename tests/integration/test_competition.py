"""The competition's rules: the final picks (Kaggle's fallback), the upload window, the
freeze boundary, phase changes audited once, settings validation, public evaluation of
every upload and its fairness across teams."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.competition.phases import audit_phase_change
from portal.core.storage import content_key
from portal.leaderboard.refresh import refresh
from tests.fixtures.competition import (
    MovableClock,
    at,
    audit_rows,
    claim_all,
    configure,
    score_runs,
    set_clock,
    submission_of,
    wait_for_public_score,
    worker_context,
)
from tests.fixtures.evaluation import example, upload

START = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
FREEZE = datetime(2030, 3, 3, 9, 0, tzinfo=UTC)
END = datetime(2030, 3, 5, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
PRIVATE_SEEDS = [8642097531, 7531908642]


def source(number: int) -> bytes:
    """A distinct, valid solution (the portal refuses the same file twice)."""
    return example("tsp_input_order.py") + f"# version {number}\n".encode()


async def upload_many(client, team, count: int, first: int = 0) -> list[int]:
    return [await upload(client, team, f"s{n}.py", source(n)) for n in range(first, first + count)]


async def admin_competition(client, admin) -> dict:
    response = await client.get("/api/v1/competition/admin", headers=admin.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def end_now(client, admin) -> dict:
    """Move the end into the past (the competition began in 2000)."""
    return await configure(client, admin, ends_at=at(-timedelta(minutes=1)))


async def batch_runs(client, admin, batch_id: int) -> list[dict]:
    response = await client.get(f"/api/v1/batches/{batch_id}", headers=admin.auth)
    assert response.status_code == 200, response.text
    return response.json()["runs"]


def final_standings(context) -> dict[int, tuple[int, float, int]]:
    """team id -> (submission id, score, rank) on the final board, freshly refreshed."""
    refresh(context.engine, context.redis)
    with context.sessions() as session:
        rows = session.execute(
            sa.text(
                "SELECT team_id, submission_id, score, rank FROM standings WHERE board = 'final'"
            )
        ).all()
    return {row.team_id: (row.submission_id, row.score, row.rank) for row in rows}


# --- The final picks: Kaggle's rule -----------------------------------------------------


async def test_the_final_runs_each_teams_picks_else_its_best_public_submissions(
    client, teams, settings
):
    context = worker_context(settings)
    admin = await teams.admin()
    picker = await teams.create(name="Picker")
    lazy = await teams.create(name="Lazy")
    slow = await teams.create(name="Slow")
    idle = await teams.create(name="Idle")  # never uploads
    gone = await teams.create(name="Gone")  # uploads, then is deactivated
    await configure(client, admin, public_seeds=[1], private_seeds=PRIVATE_SEEDS)
    admin_upload = await client.post(
        "/api/v1/submissions",
        headers=admin.auth,
        files={"file": ("a.py", source(99), "text/x-python")},
    )
    p1, p2 = await upload_many(client, picker, 2, first=0)
    l1, l2, l3, l4 = await upload_many(client, lazy, 4, first=10)
    s1, _, s3 = await upload_many(client, slow, 3, first=20)
    (g1,) = await upload_many(client, gone, 1, first=30)
    picked = await client.put(f"/api/v1/submissions/{p2}/final", headers=picker.auth)
    assert picked.status_code == 200, picked.text
    # Public scores: l2, l3 and l4 tie (the earlier uploads win the two places); Slow's
    # first two are still being evaluated (unscored, so they come after its scored one).
    public = await admin_competition(client, admin)
    score_runs(
        context,
        public["public_batch_id"],
        {p1: 9.0, p2: 1.0, l1: 1.0, l2: 3.0, l3: 3.0, l4: 3.0, s3: 0.5, g1: 9.0},
    )
    deactivated = await client.patch(
        f"/api/v1/teams/{gone.id}", headers=admin.auth, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text

    await end_now(client, admin)
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    final_id = started.json()["final_batch_id"]
    runs_in_final = await batch_runs(client, admin, final_id)

    judged = {}
    for run in runs_in_final:
        judged.setdefault(run["team_id"], set()).add(run["submission_id"])
    assert judged == {
        picker.id: {p2},  # its pick only, not its better unpicked p1
        lazy.id: {l2, l3},  # best two; on the tie the earlier uploads, not l4
        slow.id: {s3, s1},  # the scored one first, then the earliest unscored
    }
    assert admin_upload.status_code == 201, admin_upload.text
    assert idle.id not in judged and gone.id not in judged and admin.id not in judged
    # One run per private seed for each judged submission.
    assert sorted(run["seed"] for run in runs_in_final if run["submission_id"] == p2) == sorted(
        PRIVATE_SEEDS
    )

    # A team's final score is the best of its picks.
    score_runs(context, final_id, {p2: 2.0, l2: 5.0, l3: 4.0, s3: 1.0, s1: 5.0})
    standings = final_standings(context)
    assert set(standings) == {picker.id, lazy.id, slow.id}
    assert standings[lazy.id][:2] == (l2, 5.0)
    assert standings[slow.id][:2] == (s1, 5.0)
    assert standings[picker.id][:2] == (p2, 2.0)
    # Lazy and Slow tie on 5.0: the earlier submission ranks first.
    assert standings[lazy.id][2] == 1 and standings[slow.id][2] == 2
    assert standings[picker.id][2] == 3


async def test_the_fallback_takes_up_to_the_pick_limit(app, client, teams, settings):
    context = worker_context(settings)
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, public_seeds=[1], private_seeds=[5])
    ids = await upload_many(client, team, 4)
    score_runs(
        context,
        (await admin_competition(client, admin))["public_batch_id"],
        dict(zip(ids, [1.0, 4.0, 2.0, 3.0], strict=True)),
    )
    assert (await client.get("/api/v1/competition")).json()["final_picks"] == 2
    await end_now(client, admin)
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    chosen = {
        r["submission_id"]
        for r in await batch_runs(client, admin, started.json()["final_batch_id"])
    }
    assert chosen == {ids[1], ids[3]}


async def test_the_final_needs_the_end_private_seeds_and_an_upload(client, teams):
    admin = await teams.admin()
    await teams.create()
    early = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "final_not_possible"
    await end_now(client, admin)
    no_seeds = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert no_seeds.status_code == 409
    assert no_seeds.json()["error"]["code"] == "no_private_seeds"
    await configure(client, admin, private_seeds=[5])
    nothing = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert nothing.status_code == 409
    assert nothing.json()["error"]["code"] == "nothing_to_evaluate"
    assert (await admin_competition(client, admin))["final_batch_id"] is None


# --- The upload window ------------------------------------------------------------------


@pytest.fixture
def clock(app) -> MovableClock:
    """The portal's clock, moved by the test."""
    moved = MovableClock(START)
    set_clock(app, moved)
    return moved


async def windowed(client, teams, clock, **extra) -> tuple:
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, starts_at=START.isoformat(), ends_at=END.isoformat(), **extra)
    return admin, team


async def try_upload(client, team, number: int):
    return await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": (f"w{number}.py", source(number), "text/x-python")},
    )


async def test_uploads_open_at_starts_at_and_close_at_ends_at_exactly(client, teams, clock):
    _, team = await windowed(client, teams, clock)
    clock.now = START - TICK
    before = await try_upload(client, team, 1)
    assert before.status_code == 403
    assert before.json()["error"]["code"] == "competition_not_started"
    assert START.isoformat() in before.json()["error"]["message"]
    clock.now = START
    assert (await try_upload(client, team, 2)).status_code == 201
    clock.now = END - TICK
    assert (await try_upload(client, team, 3)).status_code == 201
    clock.now = END
    after = await try_upload(client, team, 4)
    assert after.status_code == 403
    assert after.json()["error"]["code"] == "competition_ended"
    assert END.isoformat() in after.json()["error"]["message"]


async def test_a_refused_upload_uses_no_quota_stores_nothing_and_is_audited(
    client, teams, clock, settings
):
    context = worker_context(settings)
    _, team = await windowed(client, teams, clock)
    for moment, code in ((START - TICK, "competition_not_started"), (END, "competition_ended")):
        clock.now = moment
        refused = await try_upload(client, team, 7)
        assert refused.json()["error"]["code"] == code
        quota = await client.get("/api/v1/submissions/quota", headers=team.auth)
        assert quota.json()["used"] == 0
        listed = await client.get("/api/v1/submissions", headers=team.auth)
        assert listed.json()["items"] == []
        assert not context.storage.exists(content_key(hashlib.sha256(source(7)).hexdigest()))
    # The same file inside the window is stored where the checks above looked.
    clock.now = START
    assert (await try_upload(client, team, 7)).status_code == 201
    assert context.storage.exists(content_key(hashlib.sha256(source(7)).hexdigest()))
    refusals = audit_rows(context, "submission.upload_refused")
    assert [row["details"]["reason"] for row in refusals] == [
        "competition_not_started",
        "competition_ended",
    ]
    assert all(row["actor_team_id"] == team.id for row in refusals)


async def test_picks_close_at_the_end(client, teams, clock):
    _, team = await windowed(client, teams, clock)
    clock.now = START
    first = (await try_upload(client, team, 1)).json()["id"]
    second = (await try_upload(client, team, 2)).json()["id"]
    assert (
        await client.put(f"/api/v1/submissions/{first}/final", headers=team.auth)
    ).status_code == 200
    clock.now = END - TICK
    assert (
        await client.put(f"/api/v1/submissions/{second}/final", headers=team.auth)
    ).status_code == 200
    assert (
        await client.delete(f"/api/v1/submissions/{second}/final", headers=team.auth)
    ).status_code == 200
    clock.now = END
    for method in ("put", "delete"):
        target = second if method == "put" else first
        closed = await getattr(client, method)(
            f"/api/v1/submissions/{target}/final", headers=team.auth
        )
        assert closed.status_code == 409, closed.text
        assert closed.json()["error"]["code"] == "picks_closed"
    mine = (await client.get(f"/api/v1/submissions/{first}", headers=team.auth)).json()
    assert mine["is_final"] is True


async def test_the_phase_follows_the_clock_to_the_instant(client, teams, clock):
    await windowed(client, teams, clock, freeze_at=FREEZE.isoformat())
    expected = [
        (START - TICK, "before"),
        (START, "open"),
        (FREEZE - TICK, "open"),
        (FREEZE, "frozen"),
        (END - TICK, "frozen"),
        (END, "ended"),
    ]
    seen = []
    for moment, _ in expected:
        clock.now = moment
        seen.append((moment, (await client.get("/api/v1/competition")).json()["phase"]))
    assert seen == expected


async def test_uploads_and_picks_stay_open_while_frozen(client, teams, clock):
    _, team = await windowed(client, teams, clock, freeze_at=FREEZE.isoformat())
    clock.now = FREEZE
    created = await try_upload(client, team, 1)
    assert created.status_code == 201, created.text
    picked = await client.put(
        f"/api/v1/submissions/{created.json()['id']}/final", headers=team.auth
    )
    assert picked.status_code == 200, picked.text


# --- Phase changes, audited once ------------------------------------------------------


def set_window(context, **moments: datetime) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in moments)
    with context.sessions.begin() as session:
        session.execute(sa.text(f"UPDATE competition SET {assignments}"), moments)


def phase_rows(context) -> list[tuple]:
    return [
        (row["details"]["from"], row["details"]["to"], row["actor_team_id"])
        for row in audit_rows(context, "competition.phase")
    ]


def sweep_at(context, now: datetime):
    with context.sessions.begin() as session:
        return audit_phase_change(session, now)


async def test_each_clock_phase_change_is_audited_exactly_once(client, settings):
    context = worker_context(settings)
    set_window(context, starts_at=START, freeze_at=FREEZE, ends_at=END)
    sweep_at(context, START - TICK)  # the clock is before the start: open -> before
    audit_rows_before = len(phase_rows(context))
    for moment in (START, FREEZE, END):
        assert sweep_at(context, moment) is not None
        assert sweep_at(context, moment) is None  # the second sweep finds nothing new
    assert phase_rows(context)[audit_rows_before:] == [
        ("before", "open", None),
        ("open", "frozen", None),
        ("frozen", "ended", None),
    ]


async def test_workers_sweeping_at_the_same_moment_audit_a_change_once(client, settings):
    context = worker_context(settings)
    set_window(context, starts_at=START, freeze_at=FREEZE, ends_at=END)
    sweep_at(context, START)
    for moment in (FREEZE, END):
        barrier = threading.Barrier(4)
        results: list = []

        def sweep(barrier=barrier, results=results, moment=moment) -> None:
            barrier.wait()
            results.append(sweep_at(context, moment))

        threads = [threading.Thread(target=sweep) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(result is not None for result in results) == 1
    assert [row[:2] for row in phase_rows(context)] == [("open", "frozen"), ("frozen", "ended")]


async def test_a_sweep_after_a_pause_records_every_change_it_missed(client, settings):
    context = worker_context(settings)
    set_window(context, starts_at=START, freeze_at=FREEZE, ends_at=END)
    sweep_at(context, START)
    # No worker swept between the freeze and the end: both changes are still recorded,
    # each with the instant it happened.
    sweep_at(context, END + timedelta(hours=1))
    rows = audit_rows(context, "competition.phase")
    assert [(r["details"]["from"], r["details"]["to"], r["details"]["at"]) for r in rows] == [
        ("open", "frozen", FREEZE.isoformat()),
        ("frozen", "ended", END.isoformat()),
    ]


async def test_an_admin_action_after_a_pause_records_the_clocks_changes_first(
    client, teams, settings
):
    context = worker_context(settings)
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, private_seeds=[5])
    await upload_many(client, team, 1)
    # Frozen and ended by the clock while no worker swept; then the admin starts the final.
    set_window(
        context, freeze_at=datetime(2001, 1, 1, tzinfo=UTC), ends_at=END - timedelta(days=9000)
    )
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    rows = audit_rows(context, "competition.phase")
    assert [(r["details"]["from"], r["details"]["to"], r["actor_team_id"]) for r in rows] == [
        ("open", "frozen", None),
        ("frozen", "ended", None),
        ("ended", "final", admin.id),
    ]
    assert rows[0]["details"]["at"] == "2001-01-01T00:00:00+00:00"


async def test_admin_actions_are_audited_with_their_actor_and_no_private_seed(
    client, teams, settings
):
    context = worker_context(settings)
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, public_seeds=[3], private_seeds=PRIVATE_SEEDS)
    (submission,) = await upload_many(client, team, 1)
    public_batch = (await admin_competition(client, admin))["public_batch_id"]
    score_runs(context, public_batch, {submission: 1.0})
    await end_now(client, admin)
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202
    score_runs(context, started.json()["final_batch_id"], {submission: 2.0})
    revealed = await client.post("/api/v1/competition/reveal", headers=admin.auth)
    assert revealed.status_code == 200, revealed.text

    actions = [row["action"] for row in audit_rows(context, "competition.")]
    assert actions.count("competition.update") == 2
    assert actions.count("competition.final_start") == 1
    assert actions.count("competition.reveal") == 1
    assert all(
        row["actor_team_id"] == admin.id
        for row in audit_rows(context, "competition.")
        if row["action"] != "competition.phase"
    )
    # The admin ended it (moving the end into the past), started the final, revealed.
    assert phase_rows(context) == [
        ("open", "ended", admin.id),
        ("ended", "final", admin.id),
        ("final", "revealed", admin.id),
    ]
    everything = json.dumps(audit_rows(context))
    public = (await client.get("/api/v1/competition")).text
    for seed in PRIVATE_SEEDS:
        assert str(seed) not in everything
        assert str(seed) not in public
    # The admin's view has them (so the checks above look at the right values).
    assert (await admin_competition(client, admin))["private_seeds"] == PRIVATE_SEEDS
    again = await client.post("/api/v1/competition/reveal", headers=admin.auth)
    assert again.status_code == 409
    assert len(audit_rows(context, "competition.reveal")) == 1


# --- PATCH validation -------------------------------------------------------------------

BAD_SETTINGS = {
    "end before start": (
        {"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
        "must be after the start",
    ),
    "freeze before start": ({"freeze_at": "1999-01-01T00:00:00Z"}, "between the start and the end"),
    "freeze after end": ({"freeze_at": "2100-01-02T00:00:00Z"}, "between the start and the end"),
    "naive start": ({"starts_at": "2030-01-01T00:00:00"}, "timezone"),
    "naive end": ({"ends_at": "2101-01-01T00:00:00"}, "timezone"),
    "duplicate seeds": ({"public_seeds": [4, 4]}, "once"),
    "negative seed": ({"private_seeds": [-1]}, "between"),
    "too many seeds": ({"public_seeds": list(range(51))}, "at most 50"),
    "NUL in the name": ({"name": "Grand\x00Prix"}, "NUL"),
    "empty name": ({"name": "   "}, "needs a name"),
    # Instants outside what every timezone can show: storing one made the competition
    # row unreadable, so every page answered 500 until the database was edited by hand.
    "start before year 1 in UTC": ({"starts_at": "0001-01-01T00:00:00+05:00"}, "between"),
    "end after year 9999 in UTC": ({"ends_at": "9999-12-31T23:59:59-05:00"}, "between"),
    # A typo or a null must not be dropped without a word.
    "unknown field": ({"freeze": "2030-01-01T00:00:00Z"}, "extra"),
    "null end": ({"ends_at": None}, "cannot be null"),
    "null name": ({"name": None}, "cannot be null"),
}


@pytest.mark.parametrize("body,hint", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
async def test_bad_settings_are_refused_with_what_to_fix_and_change_nothing(
    client, teams, settings, body, hint
):
    context = worker_context(settings)
    admin = await teams.admin()
    before = await admin_competition(client, admin)
    response = await client.patch("/api/v1/competition", headers=admin.auth, json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    message = (error["message"] + json.dumps(error.get("details"))).lower()
    assert hint.lower() in message, error
    assert await admin_competition(client, admin) == before
    assert audit_rows(context, "competition.update") == []


async def test_only_admins_change_the_competition_and_never_after_the_final_started(
    client, teams, settings
):
    context = worker_context(settings)
    admin = await teams.admin()
    team = await teams.create()
    refused = await client.patch("/api/v1/competition", headers=team.auth, json={"name": "Mine"})
    assert refused.status_code == 403
    assert (await client.post("/api/v1/competition/final", headers=team.auth)).status_code == 403
    assert (await client.post("/api/v1/competition/reveal", headers=team.auth)).status_code == 403
    assert (await client.get("/api/v1/competition/admin", headers=team.auth)).status_code == 403

    await configure(client, admin, private_seeds=[5])
    await upload_many(client, team, 1)
    await end_now(client, admin)
    assert (await client.post("/api/v1/competition/final", headers=admin.auth)).status_code == 202
    again = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert again.status_code == 409
    # A double click is told what happened, not that the final starts after the end.
    assert again.json()["error"]["message"] == "The final evaluation has already started."
    before = await admin_competition(client, admin)
    late = await client.patch("/api/v1/competition", headers=admin.auth, json={"name": "Later"})
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "final_started"
    assert (await admin_competition(client, admin))["name"] == before["name"]
    assert len(audit_rows(context, "competition.update")) == 2  # the two before the final


# --- Public evaluation ------------------------------------------------------------------


async def test_every_upload_is_queued_at_once_with_one_run_per_public_seed(client, teams):
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, public_seeds=[11, 12, 13])
    created = await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": ("solution.py", b"print('first')\n", "text/x-python")},
    )
    # The upload's own answer already says it is on its way to a score.
    assert created.status_code == 201 and created.json()["public_status"] == "queued"
    submission = created.json()["id"]
    batch_id = (await admin_competition(client, admin))["public_batch_id"]
    queued = [
        r for r in await batch_runs(client, admin, batch_id) if r["submission_id"] == submission
    ]
    assert sorted(r["seed"] for r in queued) == [11, 12, 13]
    assert {r["status"] for r in queued} == {"queued"}
    detail = (await client.get(f"/api/v1/submissions/{submission}", headers=team.auth)).json()
    assert detail["public_status"] == "queued" and detail["public_score"] is None


async def test_new_public_seeds_score_every_upload_again_in_a_new_batch(client, teams):
    admin = await teams.admin()
    alpha = await teams.create()
    beta = await teams.create()
    await configure(client, admin, public_seeds=[1, 2])
    a1, a2 = await upload_many(client, alpha, 2)
    (b1,) = await upload_many(client, beta, 1, first=10)
    old = (await admin_competition(client, admin))["public_batch_id"]
    changed = await configure(client, admin, public_seeds=[7])
    new = changed["public_batch_id"]
    assert new != old
    old_runs = await batch_runs(client, admin, old)
    assert len(old_runs) == 6 and {r["status"] for r in old_runs} == {"cancelled"}
    new_runs = await batch_runs(client, admin, new)
    assert sorted((r["submission_id"], r["seed"]) for r in new_runs) == [(a1, 7), (a2, 7), (b1, 7)]
    # The public score is the new batch's: not scored yet on the new seeds.
    detail = (await client.get(f"/api/v1/submissions/{a1}", headers=alpha.auth)).json()
    assert detail["public_status"] == "queued" and detail["public_score"] is None


async def test_a_team_uploading_five_times_does_not_hold_up_anothers_later_upload(
    client, teams, settings
):
    context = worker_context(settings)
    admin = await teams.admin()
    busy = await teams.create(name="Busy")
    quiet = await teams.create(name="Quiet")
    await configure(client, admin, public_seeds=[1, 2])
    busy_ids = await upload_many(client, busy, 5)
    (quiet_id,) = await upload_many(client, quiet, 1, first=10)
    batch_id = (await admin_competition(client, admin))["public_batch_id"]
    order = [submission_of(context, run) for run in claim_all(context, batch_id)]
    # A worker takes Busy's first upload and Quiet's upload before Busy's later ones.
    assert set(order[:4]) == {busy_ids[0], quiet_id}, order
    assert order[4:] == [s for s in busy_ids[1:] for _ in (1, 2)]


async def test_reveal_waits_for_the_final_and_says_how_far_it_is(client, teams, settings):
    context = worker_context(settings)
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, private_seeds=[5, 6])
    (submission,) = await upload_many(client, team, 1)
    too_soon = await client.post("/api/v1/competition/reveal", headers=admin.auth)
    assert too_soon.status_code == 409
    assert too_soon.json()["error"]["code"] == "final_not_started"
    await end_now(client, admin)
    final_id = (await client.post("/api/v1/competition/final", headers=admin.auth)).json()[
        "final_batch_id"
    ]
    running = await client.post("/api/v1/competition/reveal", headers=admin.auth)
    assert running.status_code == 409
    error = running.json()["error"]
    assert error["code"] == "final_running"
    assert error["details"] == {"done": 0, "total": 2}
    assert "0 of 2" in error["message"]
    score_runs(context, final_id, {submission: 1.0})
    revealed = await client.post("/api/v1/competition/reveal", headers=admin.auth)
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["phase"] == "revealed"


# --- With a real worker (Docker) ---------------------------------------------------------


async def test_uploads_are_scored_by_a_worker_and_again_when_the_public_seeds_change(
    client, teams, eval_worker
):
    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, public_seeds=[11, 12])
    slow = await upload(client, team, "order.py", example("tsp_input_order.py"))
    fast = await upload(client, team, "nn.py", example("tsp_nearest_neighbour.py"))
    scored = await wait_for_public_score(client, team, slow)
    better = await wait_for_public_score(client, team, fast)
    assert scored["public_status"] == "scored" and scored["public_score"] == 1.0
    assert better["public_score"] > 1.5
    old = (await admin_competition(client, admin))["public_batch_id"]

    await configure(client, admin, public_seeds=[21])
    rescored = await wait_for_public_score(client, team, fast)
    assert rescored["public_status"] == "scored"
    assert rescored["public_score"] != better["public_score"]  # another seed, another map
    batch = (await admin_competition(client, admin))["public_batch_id"]
    assert batch != old
    assert {r["seed"] for r in await batch_runs(client, admin, batch)} == {21}


async def test_the_watchdog_sends_a_lost_public_run_back_to_the_public_queue(
    client, teams, settings
):
    """A worker that dies mid-run: its upload's run goes back to the uploads' queue (which
    workers serve first), not behind an admin batch or the final."""
    from worker.tasks import watchdog_sweep

    admin = await teams.admin()
    team = await teams.create()
    await configure(client, admin, public_seeds=[5])
    await upload_many(client, team, 1)
    context = worker_context(
        settings.model_copy(update={"eval_runner": "process", "eval_allow_process_runner": True})
    )
    batch_id = (await admin_competition(client, admin))["public_batch_id"]
    (run,) = claim_all(context, batch_id)
    with context.sessions.begin() as session:  # its worker stopped heartbeating an hour ago
        session.execute(
            sa.text("UPDATE evaluation_run SET heartbeat_at = now() - interval '1 hour'")
        )
    sent: list[tuple[int, bool]] = []
    watchdog_sweep(context, lambda run_id, public: sent.append((run_id, public)))
    assert sent == [(run.id, True)]
