"""The gateway's budgets under races, across real portal processes sharing one Redis.

Every budget lets through exactly what it allows when forty calls race for it through
two processes; a parallel slot is a lease that frees itself when its holder dies, its
client leaves or its upstream times out, and that a long stream keeps renewed.

The model is the echo stand-in with pacing (tests/fixtures/servers.PacedModel): held
calls stay in flight until the test releases them, so nothing is settled mid-race.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from portal.llm.models import LlmUsageRateLimit
from tests.fixtures.factories import IssuedTeam, TeamFactory
from tests.fixtures.live import portal_process, running_portal
from tests.fixtures.llm import CHAT_URL, chat, in_use, until_in_flight
from tests.fixtures.llm_runs import logged_calls
from tests.fixtures.servers import HOLD, TRICKLE_GAP_SECONDS, PacedModel
from tests.fixtures.services import room_in_the_minute

CALLS = 40
ALLOWED = 7
LEASE_SECONDS = 2
MAX_TOKENS = 50

# Every racing call is this same body, so each reserves the same tokens: its
# max_tokens plus one per byte of the body for the prompt.
HELD_CALL = json.dumps(
    {"model": "echo", "messages": [{"role": "user", "content": HOLD}], "max_tokens": MAX_TOKENS}
).encode()
RESERVATION = MAX_TOKENS + len(HELD_CALL)

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


@contextlib.asynccontextmanager
async def clients(*urls: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One HTTP client for each portal process."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            for url in urls
        ]


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
    async with clients(*portals) as both:
        calls = [
            asyncio.ensure_future(
                both[index % 2].post(CHAT_URL, content=HELD_CALL, headers=headers)
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

    rows = await logged_calls(services.database_url, CALLS)
    assert sorted((row.outcome, row.refusal or "") for row in rows) == [
        ("allowed", "")
    ] * ALLOWED + [("refused", refusal[0])] * (CALLS - ALLOWED)


async def test_a_killed_process_slot_is_refused_until_its_lease_lapses(
    services, tmp_path, paced_model, portals, teams
):
    team = await team_with(teams, max_parallel=1)
    with running_portal(services, tmp_path, portal_env(paced_model), name="doomed") as doomed:
        async with clients(doomed.url, portals[1]) as (dying, survivor):
            slow = asyncio.ensure_future(
                dying.post(CHAT_URL, json=chat("/sleep 10"), headers=team.auth)
            )
            await until_in_flight(survivor, team, 1)
            doomed.process.kill()
            doomed.process.wait()
            with pytest.raises(httpx.HTTPError):
                await slow  # its process died under it

            # The dead process's slot is still held: nothing has freed it yet.
            refused = await survivor.post(CHAT_URL, json=chat(), headers=team.auth)
            assert refusal_of(refused) == ("parallel", "parallel_requests_exceeded")

            # Until its lease lapses: then the next call sweeps it out and gets the slot.
            answers = [refused]
            deadline = time.monotonic() + 15
            while answers[-1].status_code != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                answers.append(await survivor.post(CHAT_URL, json=chat(), headers=team.auth))
    assert answers[-1].status_code == 200, answers[-1].text
    assert {refusal_of(r) for r in answers[:-1]} == {("parallel", "parallel_requests_exceeded")}


async def test_a_client_that_leaves_a_stream_frees_its_slot_at_once_and_is_logged(
    services, impatient_portal, paced_model, teams
):
    """The portal keeps leases for 150 s here: only the portal itself can free the slot."""
    team = await team_with(teams, max_parallel=1)
    room_in_the_minute(services.redis_url)
    cut_before = paced_model.streams_cut
    body = json.dumps(chat("/trickle 20", stream=True, max_tokens=MAX_TOKENS)).encode()
    headers = {**team.auth, "content-type": "application/json"}
    async with clients(impatient_portal) as (portal,):
        async with portal.stream("POST", CHAT_URL, content=body, headers=headers) as response:
            assert response.status_code == 200
            request_id = response.headers["x-request-id"]
            first = await anext(response.aiter_raw())
            assert b"tick" in first
        # Leaving the block closed the connection in the middle of the answer.
        await until_in_flight(portal, team, 0, wait_seconds=10)
        # The model did not say what it spent: the reservation stays counted.
        use = await in_use(portal, team)
        assert use["tokens_this_minute"] == MAX_TOKENS + len(body)
        allowed = await portal.post(CHAT_URL, json=chat(), headers=team.auth)
        assert allowed.status_code == 200, allowed.text
    # The gateway stopped reading the answer nobody was waiting for, and logged the call.
    assert paced_model.streams_cut == cut_before + 1
    rows = await logged_calls(services.database_url, 2)
    (left,) = [row for row in rows if row.request_id == request_id]
    assert (left.status_code, left.outcome, left.answered_model) == (200, "allowed", "echo")


async def test_a_client_that_leaves_a_slow_call_frees_its_slot_within_the_lease(
    services, portals, model, teams
):
    team = await team_with(teams, max_parallel=1)
    room_in_the_minute(services.redis_url)
    async with clients(*portals) as (a, b):
        waiting = asyncio.ensure_future(a.post(CHAT_URL, json=chat(HOLD), headers=team.auth))
        await until_in_flight(b, team, 1)
        waiting.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The model never answers while the test holds it: the slot must free itself.
        await until_in_flight(b, team, 0, wait_seconds=10)
        allowed = await b.post(CHAT_URL, json=chat(), headers=team.auth)
        assert allowed.status_code == 200, allowed.text
        # Let the abandoned call finish and settle now, not in the next test.
        model.release()
        await logged_calls(services.database_url, 2)
        await until_in_flight(b, team, 0)


async def test_an_upstream_timeout_frees_the_slot_and_gives_the_tokens_back(
    impatient_portal, teams
):
    team = await team_with(teams, max_parallel=1)
    async with clients(impatient_portal) as (portal,):
        timed_out = await portal.post(CHAT_URL, json=chat("/sleep 3"), headers=team.auth)
        assert timed_out.status_code == 504, timed_out.text
        assert timed_out.json()["error"]["code"] == "upstream_timeout"
        use = await in_use(portal, team)
    assert use == {
        "requests_this_minute": 0,
        "tokens_this_minute": 0,
        "tokens_today": 0,
        "in_flight": 0,
    }


async def test_a_long_stream_keeps_its_slot_past_the_lease_time(portals, model, teams):
    """Five seconds of stream against two-second leases: renewed while it flows."""
    team = await team_with(teams, max_parallel=1)
    seconds = 5
    lines: list[str] = []
    async with clients(*portals) as (a, b):

        async def whole_stream() -> None:
            trickle = chat(f"/trickle {seconds}", stream=True)
            async with a.stream("POST", CHAT_URL, json=trickle, headers=team.auth) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line:
                        lines.append(line)

        stream = asyncio.ensure_future(whole_stream())
        await until_in_flight(b, team, 1)
        # Calls meanwhile, until the model has streamed all it will (it then waits for
        # the test to let the stream end): the slot was never free in between.
        meanwhile: list[tuple[str, str] | None] = []
        ticks = round(seconds / TRICKLE_GAP_SECONDS)
        while sum("tick" in line for line in lines) < ticks and not stream.done():
            response = await b.post(CHAT_URL, json=chat(), headers=team.auth)
            meanwhile.append(refusal_of(response))
            await asyncio.sleep(0.2)
        last = await b.post(CHAT_URL, json=chat(), headers=team.auth)
        meanwhile.append(refusal_of(last))
        model.release()
        await stream
        assert sum("tick" in line for line in lines) == ticks
        assert lines[-1] == "data: [DONE]"
        assert set(meanwhile) == {("parallel", "parallel_requests_exceeded")}
        # Over, the stream's slot is free again.
        after = await b.post(CHAT_URL, json=chat(), headers=team.auth)
        assert after.status_code == 200, after.text
