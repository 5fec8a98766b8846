"""The gateway's budgets under races, across real portal processes sharing one Redis.

Every budget lets through exactly what it allows when forty calls race for it through
two processes; a parallel slot is a lease that frees itself when its holder dies, its
client leaves or its upstream times out, and that a long stream keeps renewed.

The model is the echo stand-in with pacing (tests/fixtures/servers.PacedModel): held
calls stay in flight until the test releases them, so nothing is settled mid-race.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
import pytest
import sqlalchemy as sa

from portal.llm.models import LlmUsageLog, LlmUsageRateLimit
from tests.fixtures.factories import IssuedTeam, TeamFactory
from tests.fixtures.live import portal_process, running_portal
from tests.fixtures.servers import HOLD, PacedModel
from tests.fixtures.services import room_in_the_minute

CALLS = 40
ALLOWED = 7
LEASE_SECONDS = 2
MAX_TOKENS = 50
CHAT = "/llm/v1/chat/completions"

# Every racing call is this same body, so each reserves the same tokens: its
# max_tokens plus a third of its bytes for the prompt.
HELD_CALL = json.dumps(
    {"model": "echo", "messages": [{"role": "user", "content": HOLD}], "max_tokens": MAX_TOKENS}
).encode()
RESERVATION = MAX_TOKENS + math.ceil(len(HELD_CALL) / 3)

# Budgets no test reaches, so each test measures only the one it sets.
UNREACHED = {
    "requests_per_minute": 100_000,
    "tokens_per_minute": 100_000_000,
    "tokens_per_day": 100_000_000,
    "max_parallel": 1_000,
}

# Each budget set to allow ALLOWED racing calls (the token budgets filled exactly by
# them), and how its refusals read: the error's type and code, the log's refusal.
RACES = {
    "requests per minute": (
        {"requests_per_minute": ALLOWED},
        ("requests", "rate_limit_exceeded"),
    ),
    "tokens per minute": (
        {"tokens_per_minute": ALLOWED * RESERVATION},
        ("tokens", "tokens_per_minute_exceeded"),
    ),
    "tokens per day": (
        {"tokens_per_day": ALLOWED * RESERVATION},
        ("tokens", "tokens_per_day_exceeded"),
    ),
    "parallel": ({"max_parallel": ALLOWED}, ("parallel", "parallel_requests_exceeded")),
}

T = TypeVar("T")


def chat(content: str = "hello there", **extra) -> dict:
    return {"model": "echo", "messages": [{"role": "user", "content": content}], **extra}


def portal_env(model: PacedModel, **settings: str) -> dict[str, str]:
    """A portal on the paced model with short leases and a log flushed within a second."""
    return {
        "PORTAL_LLM_UPSTREAM_URL": model.url,
        "PORTAL_LLM_LEASE_SECONDS": str(LEASE_SECONDS),
        "PORTAL_LLM_USAGE_FLUSH_SECONDS": "0.1",
        **settings,
    }


@pytest.fixture(scope="module")
def paced_model() -> Iterator[PacedModel]:
    server = PacedModel().start()
    yield server
    server.release()  # nothing left waiting on it as it stops
    server.stop()


@pytest.fixture
def model(paced_model: PacedModel) -> Iterator[PacedModel]:
    """The paced model holding "/hold" calls until the test releases them."""
    paced_model.hold()
    yield paced_model
    paced_model.release()


@pytest.fixture(scope="module")
def portals(services, paced_model, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """Two portal processes with 2-second leases, kept for the module."""
    work_dir = tmp_path_factory.mktemp("races")
    env = portal_env(paced_model)
    with (
        portal_process(services, work_dir, env, name="portal-a") as url_a,
        portal_process(services, work_dir, env, name="portal-b") as url_b,
    ):
        yield url_a, url_b


@pytest.fixture(scope="module")
def impatient_portal(services, paced_model, tmp_path_factory) -> Iterator[str]:
    """A portal that waits 1 s for the model and keeps leases for the default 150 s:
    a slot it frees is freed by the portal, never by its lease lapsing."""
    env = portal_env(paced_model, PORTAL_LLM_READ_TIMEOUT_SECONDS="1")
    del env["PORTAL_LLM_LEASE_SECONDS"]
    with portal_process(services, tmp_path_factory.mktemp("impatient"), env) as url:
        yield url


async def team_with(teams: TeamFactory, **budgets: int) -> IssuedTeam:
    team = await teams.create()
    async with teams.sessionmaker() as session:
        session.add(LlmUsageRateLimit(team_id=team.id, **{**UNREACHED, **budgets}))
        await session.commit()
    return team


async def in_use(http: httpx.AsyncClient, url: str, team: IssuedTeam) -> dict:
    """The team's use of each budget right now, as the usage API reports it."""
    response = await http.get(f"{url}/api/v1/usage", headers=team.auth)
    assert response.status_code == 200, response.text
    return response.json()["in_use"]


async def eventually(
    check: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 15
) -> T:
    """Poll `check` until `done` says its answer is the awaited one; the last answer
    after `within` seconds, for the test to report what it saw instead."""
    deadline = time.monotonic() + within
    while True:
        answer = await check()
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def logged(teams: TeamFactory, team: IssuedTeam, count: int) -> list[LlmUsageLog]:
    """The team's usage rows once the processes' buffered writers wrote `count`."""

    async def rows() -> list[LlmUsageLog]:
        async with teams.sessionmaker() as session:
            query = sa.select(LlmUsageLog).where(LlmUsageLog.team_id == team.id)
            return list(await session.scalars(query))

    return await eventually(rows, lambda found: len(found) >= count)


def refusal_of(response: httpx.Response) -> tuple[str, str] | None:
    if response.status_code != 429:
        return None
    error = response.json()["error"]
    return error["type"], error["code"]


@pytest.mark.parametrize("budget", RACES)
async def test_forty_racing_calls_through_two_processes_get_exactly_what_the_budget_allows(
    budget, services, portals, model, teams
):
    budgets, refusal = RACES[budget]
    team = await team_with(teams, **budgets)
    room_in_the_minute(services.redis_url)
    headers = {**team.auth, "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as http:
        calls = [
            asyncio.ensure_future(
                http.post(f"{portals[index % 2]}{CHAT}", content=HELD_CALL, headers=headers)
            )
            for index in range(CALLS)
        ]
        # Refusals answer at once; the allowed calls wait on the model until every call
        # has been decided (or a generous while, if too many got through).
        deadline = time.monotonic() + 15
        while sum(call.done() for call in calls) < CALLS - ALLOWED:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        model.release()
        responses = await asyncio.gather(*calls)

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == ALLOWED, statuses
    assert statuses.count(429) == CALLS - ALLOWED, statuses
    assert {refusal_of(r) for r in responses if r.status_code == 429} == {refusal}
    # Both processes refused: they shared one count.
    assert {index % 2 for index, status in enumerate(statuses) if status == 429} == {0, 1}
    if refusal[0] == "tokens":
        # The test's reservation is the gateway's: the allowed calls filled the budget.
        assert f"this call reserves {RESERVATION} tokens" in responses[statuses.index(429)].text

    rows = await logged(teams, team, CALLS)
    assert sorted((row.outcome, row.refusal or "") for row in rows) == [
        ("allowed", "")
    ] * ALLOWED + [("refused", refusal[0])] * (CALLS - ALLOWED)


async def test_a_killed_process_slot_is_refused_until_its_lease_lapses(
    services, tmp_path, paced_model, portals, teams
):
    team = await team_with(teams, max_parallel=1)
    survivor = portals[1]
    async with httpx.AsyncClient(timeout=30) as http:
        with running_portal(services, tmp_path, portal_env(paced_model), name="doomed") as doomed:
            slow = asyncio.ensure_future(
                http.post(f"{doomed.url}{CHAT}", json=chat("/sleep 10"), headers=team.auth)
            )
            use = await eventually(
                lambda: in_use(http, survivor, team), lambda use: use["in_flight"] == 1
            )
            assert use["in_flight"] == 1, use
            doomed.process.kill()
            doomed.process.wait()
        with pytest.raises(httpx.HTTPError):
            await slow  # its process died under it

        # The dead process's slot is still held: nothing has freed it yet.
        refused = await http.post(f"{survivor}{CHAT}", json=chat(), headers=team.auth)
        assert refusal_of(refused) == ("parallel", "parallel_requests_exceeded")

        # Until its lease lapses, then the next call sweeps it out and gets the slot.
        answers: list[httpx.Response] = []

        async def call() -> httpx.Response:
            answers.append(await http.post(f"{survivor}{CHAT}", json=chat(), headers=team.auth))
            return answers[-1]

        allowed = await eventually(call, lambda response: response.status_code == 200)
    assert allowed.status_code == 200, allowed.text
    assert {refusal_of(r) for r in answers[:-1]} <= {("parallel", "parallel_requests_exceeded")}


async def test_a_client_that_leaves_a_stream_frees_its_slot_at_once(
    services, impatient_portal, paced_model, teams
):
    """The portal keeps leases for 150 s here: only the portal itself can free the slot."""
    team = await team_with(teams, max_parallel=1)
    room_in_the_minute(services.redis_url)
    cut_before = paced_model.streams_cut
    body = json.dumps(chat("/trickle 20", stream=True, max_tokens=MAX_TOKENS)).encode()
    headers = {**team.auth, "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream(
            "POST", f"{impatient_portal}{CHAT}", content=body, headers=headers
        ) as response:
            assert response.status_code == 200
            first = await anext(response.aiter_raw())
            assert b"tick" in first
        # Leaving the block closed the connection in the middle of the answer.
        use = await eventually(
            lambda: in_use(http, impatient_portal, team), lambda use: use["in_flight"] == 0
        )
        assert use["in_flight"] == 0, use
        # The model did not say what it spent: the reservation stays counted.
        assert use["tokens_this_minute"] == MAX_TOKENS + math.ceil(len(body) / 3)
        allowed = await http.post(f"{impatient_portal}{CHAT}", json=chat(), headers=team.auth)
        assert allowed.status_code == 200, allowed.text
    # The gateway stopped reading the answer nobody was waiting for.
    assert paced_model.streams_cut == cut_before + 1
    (left, _) = sorted(await logged(teams, team, 2), key=lambda row: row.id)
    assert (left.status_code, left.outcome) == (200, "allowed")


async def test_a_client_that_leaves_a_slow_call_frees_its_slot_within_the_lease(
    services, portals, model, teams
):
    team = await team_with(teams, max_parallel=1)
    room_in_the_minute(services.redis_url)
    url_a, url_b = portals
    async with httpx.AsyncClient(timeout=30) as http:
        waiting = asyncio.ensure_future(
            http.post(f"{url_a}{CHAT}", json=chat(HOLD), headers=team.auth)
        )
        await eventually(lambda: in_use(http, url_b, team), lambda use: use["in_flight"] == 1)
        waiting.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The model never answers while the test holds it: the slot must free itself.
        use = await eventually(lambda: in_use(http, url_b, team), lambda use: use["in_flight"] == 0)
        assert use["in_flight"] == 0, use
        allowed = await http.post(f"{url_b}{CHAT}", json=chat(), headers=team.auth)
        assert allowed.status_code == 200, allowed.text
        # Let the abandoned call finish and settle now, not in the next test.
        model.release()
        await logged(teams, team, 2)
        await eventually(
            lambda: in_use(http, url_b, team),
            lambda use: use["requests_this_minute"] == 2 and use["in_flight"] == 0,
        )


async def test_an_upstream_timeout_frees_the_slot_and_gives_the_tokens_back(
    impatient_portal, teams
):
    team = await team_with(teams, max_parallel=1)
    async with httpx.AsyncClient(timeout=30) as http:
        timed_out = await http.post(
            f"{impatient_portal}{CHAT}", json=chat("/sleep 3"), headers=team.auth
        )
        assert timed_out.status_code == 504, timed_out.text
        assert timed_out.json()["error"]["code"] == "upstream_timeout"
        use = await in_use(http, impatient_portal, team)
    assert (use["in_flight"], use["requests_this_minute"]) == (0, 0)
    assert (use["tokens_this_minute"], use["tokens_today"]) == (0, 0)


async def test_a_long_stream_keeps_its_slot_past_the_lease_time(portals, teams):
    """A stream of five seconds against two-second leases: renewed while it flows."""
    team = await team_with(teams, max_parallel=1)
    url_a, url_b = portals
    async with httpx.AsyncClient(timeout=30) as http:

        async def whole_stream() -> list[str]:
            async with http.stream(
                "POST", f"{url_a}{CHAT}", json=chat("/trickle 5", stream=True), headers=team.auth
            ) as response:
                assert response.status_code == 200
                return [line async for line in response.aiter_lines() if line]

        stream = asyncio.ensure_future(whole_stream())
        await eventually(lambda: in_use(http, url_b, team), lambda use: use["in_flight"] == 1)
        meanwhile: list[tuple[str, str] | None] = []
        while not stream.done():
            response = await http.post(f"{url_b}{CHAT}", json=chat(), headers=team.auth)
            meanwhile.append(refusal_of(response))
            await asyncio.sleep(0.2)
        lines = await stream
        # The stream ran its whole course, so the calls above span all of it.
        assert lines[-1] == "data: [DONE]"
        assert sum("tick" in line for line in lines) == 20
        assert set(meanwhile) == {("parallel", "parallel_requests_exceeded")}
        # Over, the stream's slot is free again.
        after = await http.post(f"{url_b}{CHAT}", json=chat(), headers=team.auth)
        assert after.status_code == 200, after.text
