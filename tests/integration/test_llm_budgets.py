"""The LLM gateway's budgets, as a team meets them: requests and tokens per minute,
tokens per day, calls in flight and the models it may call; what a call is charged,
what a failed call gives back, and how an admin sets them. Against the real stand-in
model, Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from portal.llm.budgets import prompt_estimate
from portal.llm.echo import EchoServer
from tests.fixtures.factories import TeamFactory
from tests.fixtures.llm import (
    CHAT_URL,
    NOTHING_IN_USE,
    chat,
    gateway_to,
    in_use,
    set_budgets,
    until_in_flight,
    usage_rows,
)
from tests.fixtures.servers import Handler, ScriptedServer, answer_with
from tests.fixtures.services import room_in_the_minute

SEOUL = ZoneInfo("Asia/Seoul")
DEFAULT_TOKENS_PER_MINUTE = 100_000
DEFAULT_TOKENS_PER_DAY = 2_000_000


@pytest.fixture
def settings(settings):
    # The competition's day ends at midnight in Seoul, not UTC, so a test can tell
    # them apart; and a limit an admin sets applies to the team's very next call
    # (the team lookup cache, 2 s by default, is tested in test_llm_gateway).
    return settings.model_copy(update={"timezone": "Asia/Seoul", "llm_auth_cache_seconds": 0})


@pytest.fixture(autouse=True)
def _one_minute_bucket(services):
    """These tests count per-minute budgets: keep each inside one minute bucket."""
    room_in_the_minute(services.redis_url)


def reserving(tokens: int, content: str = "hello there", **extra) -> bytes:
    """A chat body whose call reserves exactly `tokens`: its max_tokens plus the prompt
    estimate of its own bytes."""
    max_tokens = tokens
    for _ in range(5):
        body = json.dumps(chat(content, max_tokens=max_tokens, **extra)).encode()
        reserved = max_tokens + prompt_estimate(len(body))
        if reserved == tokens:
            return body
        max_tokens += tokens - reserved
    raise AssertionError(f"no max_tokens makes a call reserve exactly {tokens} tokens")


async def call(client: httpx.AsyncClient, team, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        CHAT_URL, content=content, headers={**team.auth, "content-type": "application/json"}
    )


def spent(response: httpx.Response) -> int:
    """The tokens the model reported for a JSON answer."""
    return response.json()["usage"]["total_tokens"]


def stream_usage(response: httpx.Response) -> dict:
    """The usage chunk of a streamed answer (the client asked for it)."""
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    return json.loads(events[-2])["usage"]


def refusal(response: httpx.Response, kind: str, code: str) -> tuple[dict, int]:
    """The 429's OpenAI error and its Retry-After, checking the shape every refusal
    shares: its kind as `type`, its own `code`, and every budget's headers."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (kind, code, None)
    for budget in ("requests", "tokens", "tokens-day"):
        for part in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{part}-{budget}" in response.headers
    for part in ("limit", "remaining"):
        assert f"x-ratelimit-{part}-parallel" in response.headers
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return error, retry_after


def answers_with_status(status: int) -> Handler:
    """An upstream that answers every call with `status` and an OpenAI error, no usage."""
    body = json.dumps(
        {"error": {"message": f"upstream {status}", "type": "x", "param": None, "code": None}}
    ).encode()
    head = f"HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\n"
    return answer_with(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)


# 1. Each refusal: a 429 in OpenAI's shape, its own type, code, headers and Retry-After.


async def test_calls_over_the_requests_per_minute_are_refused_until_the_minute_ends(client, teams):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, requests_per_minute=2)
    for remaining in ("1", "0"):
        allowed = await call(client, team, chat())
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-ratelimit-remaining-requests"] == remaining

    refused = await call(client, team, chat())
    error, retry_after = refusal(refused, "requests", "rate_limit_exceeded")
    assert retry_after <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == f"{retry_after}s"
    assert "2 requests per minute" in error["message"]


async def test_tokens_per_minute_allow_what_fits_and_refuse_what_would_overspend(client, teams):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_minute=1000)
    first = await call(client, team, chat(max_tokens=50))
    assert first.status_code == 200, first.text
    used = spent(first)

    # Exactly what is left fits.
    fits = await call(client, team, reserving(1000 - used))
    assert fits.status_code == 200, fits.text
    assert fits.headers["x-ratelimit-remaining-tokens"] == "0"
    used += spent(fits)

    refused = await call(client, team, reserving(1000 - used + 1))
    error, retry_after = refusal(refused, "tokens", "tokens_per_minute_exceeded")
    assert retry_after <= 60
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(1000 - used)
    assert refused.headers["x-ratelimit-reset-tokens"] == f"{retry_after}s"
    assert error["message"].startswith("Token budget reached")
    assert f"this call reserves {1000 - used + 1} tokens" in error["message"]
    assert "lower max_tokens" in error["message"]


async def test_a_call_larger_than_the_whole_minute_budget_is_told_to_lower_max_tokens(
    client, teams
):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_minute=1000)
    refused = await call(client, team, reserving(1001))
    error, _ = refusal(refused, "tokens", "tokens_per_minute_exceeded")
    assert refused.headers["x-ratelimit-remaining-tokens"] == "1000"
    assert error["message"].startswith("Request too large: this call reserves 1001 tokens")
    assert "Lower max_tokens or shorten the prompt" in error["message"]


async def test_a_call_larger_than_the_whole_day_budget_is_told_to_lower_max_tokens(client, teams):
    # Waiting for midnight would not help: the call would be refused again.
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_day=1000)
    refused = await call(client, team, reserving(1001))
    error, _ = refusal(refused, "tokens", "tokens_per_day_exceeded")
    assert refused.headers["x-ratelimit-remaining-tokens-day"] == "1000"
    assert error["message"].startswith("Request too large: this call reserves 1001 tokens")
    assert "1000 tokens per day" in error["message"]
    assert "Lower max_tokens or shorten the prompt" in error["message"]
    assert "midnight" not in error["message"]


async def test_tokens_per_day_refusal_says_to_retry_at_midnight_in_the_competitions_timezone(
    app, client, teams
):
    # 21:00 in Seoul is 12:00 UTC: three hours to the local midnight, twelve to UTC's.
    app.state.llm_gateway.clock = lambda: datetime(2030, 3, 10, 21, 0, tzinfo=SEOUL)
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_day=500)
    first = await call(client, team, reserving(400))
    assert first.status_code == 200, first.text
    used = spent(first)
    before = await in_use(client, team)

    refused = await call(client, team, reserving(500 - used + 1))
    error, retry_after = refusal(refused, "tokens", "tokens_per_day_exceeded")
    assert retry_after == 3 * 3600
    assert refused.headers["x-ratelimit-limit-tokens-day"] == "500"
    assert refused.headers["x-ratelimit-remaining-tokens-day"] == str(500 - used)
    assert refused.headers["x-ratelimit-reset-tokens-day"] == f"{3 * 3600}s"
    assert "starts again at midnight (Asia/Seoul), in 10800 s" in error["message"]
    assert await in_use(client, team) == before


async def test_a_third_call_while_two_are_in_flight_is_refused_until_one_ends(client, teams):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, max_parallel=2)
    slow = [asyncio.create_task(call(client, team, chat("/sleep 1.5"))) for _ in range(2)]
    await until_in_flight(client, team, 2)

    refused = await call(client, team, chat())
    error, retry_after = refusal(refused, "parallel", "parallel_requests_exceeded")
    assert retry_after == 1
    assert refused.headers["x-ratelimit-limit-parallel"] == "2"
    assert refused.headers["x-ratelimit-remaining-parallel"] == "0"
    assert "2 in flight" in error["message"]

    assert [response.status_code for response in await asyncio.gather(*slow)] == [200, 200]
    after = await call(client, team, chat())
    assert after.status_code == 200, after.text
    assert after.headers["x-ratelimit-remaining-parallel"] == "1"
    # The refused call took no request: two slow calls and this one.
    assert after.headers["x-ratelimit-remaining-requests"] == "7"


# 2. Refusals cost nothing.


async def test_refused_calls_take_nothing_from_any_budget(app, client, teams):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, requests_per_minute=2, models=["echo"])
    first = await call(client, team, chat())
    assert first.status_code == 200, first.text
    after_first = await in_use(client, team)

    too_large = await call(client, team, reserving(DEFAULT_TOKENS_PER_MINUTE + 1))
    refusal(too_large, "tokens", "tokens_per_minute_exceeded")
    not_allowed = await call(client, team, {**chat(), "model": "echo-latest"})
    assert not_allowed.status_code == 404
    malformed = await call(client, team, chat(max_tokens=0))
    assert malformed.status_code == 400
    assert await in_use(client, team) == after_first

    second = await call(client, team, reserving(600))
    assert second.status_code == 200, second.text
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-remaining-tokens"] == str(
        DEFAULT_TOKENS_PER_MINUTE - spent(first) - 600
    )
    after_second = await in_use(client, team)
    for _ in range(3):
        refusal(await call(client, team, chat()), "requests", "rate_limit_exceeded")
    assert await in_use(client, team) == after_second

    rows = await usage_rows(app, team.id, expected=8)
    assert [(row.outcome, row.refusal) for row in rows] == [
        ("allowed", None),
        ("refused", "tokens"),
        ("refused", "model"),
        ("failed", None),
        ("allowed", None),
        *[("refused", "requests")] * 3,
    ]


# 3. Settlement: a call is charged what the model reported, not what it reserved.


async def test_an_allowed_call_is_charged_what_the_model_reported_not_its_reservation(
    client, teams
):
    team = await teams.create()
    first = await call(client, team, reserving(600))
    assert first.status_code == 200, first.text
    # While in flight the call held its whole reservation.
    assert first.headers["x-ratelimit-remaining-tokens"] == str(DEFAULT_TOKENS_PER_MINUTE - 600)
    reported = first.json()["usage"]["prompt_tokens"] + first.json()["usage"]["completion_tokens"]
    assert reported < 600
    assert await in_use(client, team) == {
        "requests_this_minute": 1,
        "tokens_this_minute": reported,
        "tokens_today": reported,
        "in_flight": 0,
    }
    second = await call(client, team, reserving(600))
    assert second.headers["x-ratelimit-remaining-tokens"] == str(
        DEFAULT_TOKENS_PER_MINUTE - reported - 600
    )
    assert second.headers["x-ratelimit-remaining-tokens-day"] == str(
        DEFAULT_TOKENS_PER_DAY - reported - 600
    )


async def test_a_streamed_call_is_charged_the_usage_its_stream_reported(client, teams):
    team = await teams.create()
    shown = await call(
        client, team, reserving(600, stream=True, stream_options={"include_usage": True})
    )
    assert shown.status_code == 200, shown.text
    usage = stream_usage(shown)
    reported = usage["prompt_tokens"] + usage["completion_tokens"]
    assert reported < 600
    assert (await in_use(client, team))["tokens_this_minute"] == reported

    # A client that did not ask for the usage chunk is charged by it all the same.
    unshown = await call(client, team, reserving(600, stream=True))
    assert unshown.status_code == 200, unshown.text
    events = [line[5:] for line in unshown.text.splitlines() if line.startswith("data: {")]
    assert all(json.loads(event).get("usage") is None for event in events)
    assert await in_use(client, team) == {
        "requests_this_minute": 2,
        "tokens_this_minute": 2 * reported,
        "tokens_today": 2 * reported,
        "in_flight": 0,
    }


# 4. Refunds: a call the portal could not complete gives back its request and tokens.


async def gives_back_everything(client: httpx.AsyncClient, teams: TeamFactory, expect: int, body):
    """Calls twice with one parallel slot: after the first, the team holds nothing, so
    the second is let through with the whole budget again."""
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, max_parallel=1)
    failed = await call(client, team, body)
    assert failed.status_code == expect, failed.text
    assert await in_use(client, team) == NOTHING_IN_USE
    again = await call(client, team, body)
    assert again.status_code == expect, again.text
    assert again.headers["x-ratelimit-remaining-requests"] == "9"
    assert again.headers["x-ratelimit-remaining-tokens"] == str(DEFAULT_TOKENS_PER_MINUTE - 600)
    assert again.headers["x-ratelimit-remaining-tokens-day"] == str(DEFAULT_TOKENS_PER_DAY - 600)
    return again


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_call_the_upstream_failed_gives_back_its_request_tokens_and_slot(
    settings, status, stream
):
    async with (
        ScriptedServer(answers_with_status(status)) as upstream,
        gateway_to(settings, f"{upstream.url}/v1") as (client, teams),
    ):
        again = await gives_back_everything(client, teams, status, reserving(600, stream=stream))
        # The upstream's own answer, not a refusal of the gateway's.
        assert again.json()["error"]["message"] == f"upstream {status}"


def breaks_off_its_error(status: int) -> Handler:
    """An upstream that starts an error answer and hangs up halfway through it."""
    head = f"HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\n"
    return answer_with(
        f"{head}content-length: 200\r\n\r\n".encode() + b'{"error": {"mess', keep_open=False
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_upstream_that_breaks_off_its_error_answer_gives_back_everything(settings, stream):
    async with (
        ScriptedServer(breaks_off_its_error(500)) as upstream,
        gateway_to(settings, f"{upstream.url}/v1") as (client, teams),
    ):
        again = await gives_back_everything(client, teams, 502, reserving(600, stream=stream))
        assert again.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_call_the_model_did_not_answer_in_time_gives_back_everything(settings, stream):
    async with gateway_to(settings, settings.llm_upstream_url, llm_read_timeout_seconds=0.3) as (
        client,
        teams,
    ):
        again = await gives_back_everything(
            client, teams, 504, reserving(600, "/sleep 1", stream=stream)
        )
        assert again.json()["error"]["code"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_call_to_an_unreachable_model_server_gives_back_everything(settings, stream):
    dead = EchoServer().start()
    dead_url = dead.url
    dead.stop()
    async with gateway_to(settings, dead_url) as (client, teams):
        again = await gives_back_everything(client, teams, 502, reserving(600, stream=stream))
        assert again.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_call_the_upstream_rejected_counts_the_request_but_no_tokens(settings, stream):
    async with (
        ScriptedServer(answers_with_status(400)) as upstream,
        gateway_to(settings, f"{upstream.url}/v1") as (client, teams),
    ):
        team = await teams.create()
        rejected = await call(client, team, reserving(600, stream=stream))
        assert rejected.status_code == 400
        assert await in_use(client, team) == {**NOTHING_IN_USE, "requests_this_minute": 1}


# 5. Model allowlists.


async def test_a_model_outside_the_allowlist_is_openai_404_and_costs_nothing(app, client, teams):
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, models=["echo"])
    # The model server has this model: only the gateway stands in the way.
    refused = await call(client, team, {**chat(), "model": "echo-latest"})
    assert refused.status_code == 404
    assert refused.json() == {
        "error": {
            "message": "The model 'echo-latest' does not exist or your team may not use it. "
            "Models your team may call: echo.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert await in_use(client, team) == NOTHING_IN_USE
    (row,) = await usage_rows(app, team.id, expected=1)
    assert (row.model, row.status_code, row.outcome, row.refusal) == (
        "echo-latest",
        404,
        "refused",
        "model",
    )


async def test_a_team_may_call_and_sees_only_its_models_default_override_or_none(settings):
    async def may_call(client, team) -> dict[str, int]:
        listed = await client.get("/llm/v1/models", headers=team.auth)
        assert listed.status_code == 200, listed.text
        statuses = {}
        for model in ("echo", "echo-latest"):
            statuses[model] = (await call(client, team, {**chat(), "model": model})).status_code
        assert [entry["id"] for entry in listed.json()["data"]] == [
            model for model, status in statuses.items() if status == 200
        ]
        return statuses

    async with gateway_to(settings, settings.llm_upstream_url, llm_models="echo-latest") as (
        client,
        teams,
    ):
        admin, team = await teams.admin(), await teams.create()
        # PORTAL_LLM_MODELS is every team's default.
        assert await may_call(client, team) == {"echo": 404, "echo-latest": 200}
        # A team's own list replaces it,
        await set_budgets(client, admin, team, models=["echo"])
        assert await may_call(client, team) == {"echo": 200, "echo-latest": 404}
        # null returns to it,
        await set_budgets(client, admin, team, models=None)
        assert await may_call(client, team) == {"echo": 404, "echo-latest": 200}
        # and [] allows none.
        await set_budgets(client, admin, team, models=[])
        assert await may_call(client, team) == {"echo": 404, "echo-latest": 404}
        none = await call(client, team, chat())
        assert (
            "Models your team may call: none (ask the organizers)."
            in (none.json()["error"]["message"])
        )


# 6. The daily budget starts again at local midnight.


async def test_a_new_local_day_brings_a_new_daily_token_budget(app, client, teams):
    gateway = app.state.llm_gateway
    # Two seconds before midnight in Seoul (14:59:58 UTC; UTC's day goes on).
    gateway.clock = lambda: datetime(2030, 3, 10, 23, 59, 58, tzinfo=SEOUL)
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_day=500)
    first = await call(client, team, reserving(500))
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining-tokens-day"] == "0"
    left = 500 - spent(first)
    _, retry_after = refusal(
        await call(client, team, reserving(left + 1)), "tokens", "tokens_per_day_exceeded"
    )
    assert retry_after == 2

    gateway.clock = lambda: datetime(2030, 3, 11, 0, 0, 1, tzinfo=SEOUL)
    next_day = await call(client, team, reserving(left + 1))
    assert next_day.status_code == 200, next_day.text
    assert next_day.headers["x-ratelimit-remaining-tokens-day"] == str(500 - (left + 1))
    assert next_day.headers["x-ratelimit-reset-tokens-day"] == f"{24 * 3600 - 1}s"


async def test_the_daily_budget_does_not_start_again_at_utc_midnight(app, client, teams):
    gateway = app.state.llm_gateway
    # UTC's day ends in two seconds; Seoul's (09:00 now) in fifteen hours.
    before_utc_midnight = datetime(2030, 3, 10, 23, 59, 58, tzinfo=ZoneInfo("UTC"))
    after_utc_midnight = datetime(2030, 3, 11, 0, 0, 1, tzinfo=ZoneInfo("UTC"))
    seoul_midnight = datetime(2030, 3, 12, tzinfo=SEOUL)
    gateway.clock = lambda: before_utc_midnight
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_day=500)
    first = await call(client, team, reserving(500))
    assert first.status_code == 200, first.text
    left = 500 - spent(first)

    gateway.clock = lambda: after_utc_midnight
    refused = await call(client, team, reserving(left + 1))
    _, retry_after = refusal(refused, "tokens", "tokens_per_day_exceeded")
    assert retry_after == (seoul_midnight - after_utc_midnight).total_seconds()
    assert refused.headers["x-ratelimit-remaining-tokens-day"] == str(left)


# 7. The model that answered is logged beside the one asked for.


async def test_the_model_that_answered_is_logged_beside_the_one_asked_for(app, client, teams):
    team = await teams.create()
    alias = await call(client, team, {**chat(), "model": "echo-latest"})
    assert alias.status_code == 200 and alias.json()["model"] == "echo"
    streamed = await call(client, team, {**chat(stream=True), "model": "echo-latest"})
    assert streamed.status_code == 200
    plain = await call(client, team, chat())
    assert plain.status_code == 200

    rows = await usage_rows(app, team.id, expected=3)
    assert [(row.model, row.answered_model) for row in rows] == [
        ("echo-latest", "echo"),
        ("echo-latest", "echo"),
        ("echo", "echo"),
    ]


# 8. What a call asks for must be whole numbers in range.


@pytest.mark.parametrize(
    ("asks", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": 100.0}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 10_000_001}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_completion_tokens": "lots"}, "max_completion_tokens"),
        ({"max_completion_tokens": 10, "max_tokens": -1}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"n": 2.5}, "n"),
    ],
)
async def test_max_tokens_and_n_that_are_not_whole_numbers_in_range_are_400(
    app, client, teams, asks, param
):
    team = await teams.create()
    response = await call(client, team, chat(**asks))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert error["message"].startswith(f"'{param}' must be a whole number from 1 to ")
    assert await in_use(client, team) == NOTHING_IN_USE
    (row,) = await usage_rows(app, team.id, expected=1)
    assert (row.status_code, row.outcome) == (400, "failed")


# 9. Setting a team's budgets.


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"requests_per_minute": -1}, "requests_per_minute"),
        ({"tokens_per_minute": -1}, "tokens_per_minute"),
        ({"tokens_per_day": -1}, "tokens_per_day"),
        ({"max_parallel": -1}, "max_parallel"),
        ({"requests_per_minute": 5, "max_parallel": -1}, "max_parallel"),
        ({"tokens_per_hour": 5}, "tokens_per_hour"),
        ({"models": [5]}, "models.0"),
        ({"models": ["echo", None]}, "models.1"),
        ({"models": "echo"}, "models"),
        ({"models": [""]}, "models.0"),
        ({"models": ["   "]}, "models.0"),
    ],
)
async def test_a_budget_an_admin_sets_wrong_is_422_naming_the_field(client, teams, limits, field):
    admin, team = await teams.admin(), await teams.create()
    response = await client.put(
        f"/api/v1/teams/{team.id}/llm-limit", json=limits, headers=admin.auth
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == [field]
    assert f"{field}: " in error["message"]
    # Nothing of it was kept.
    kept = await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)
    assert (kept.json()["overridden"], kept.json()["requests_per_minute"]) == ([], 10)


async def test_the_budgets_in_force_are_the_teams_own_over_the_defaults(settings):
    async with gateway_to(
        settings, settings.llm_upstream_url, llm_max_parallel=3, llm_models="echo"
    ) as (client, teams):
        admin, team = await teams.admin(), await teams.create()
        limit_url = f"/api/v1/teams/{team.id}/llm-limit"
        defaults = (await client.get(limit_url, headers=admin.auth)).json()
        assert defaults == {
            "team_id": team.id,
            "requests_per_minute": 10,
            "tokens_per_minute": DEFAULT_TOKENS_PER_MINUTE,
            "tokens_per_day": DEFAULT_TOKENS_PER_DAY,
            "max_parallel": 3,
            "models": ["echo"],
            "overridden": [],
            "is_override": False,
        }
        put = await set_budgets(
            client, admin, team, tokens_per_day=5000, models=["echo-latest", " echo-latest "]
        )
        read = (await client.get(limit_url, headers=admin.auth)).json()
        assert (
            read
            == put
            == {
                **defaults,
                "tokens_per_day": 5000,
                "models": ["echo-latest"],
                "overridden": ["tokens_per_day", "models"],
                "is_override": True,
            }
        )
        # The gateway holds the team to the same values.
        response = await call(client, team, {**chat(), "model": "echo-latest"})
        assert response.headers["x-ratelimit-limit-tokens-day"] == "5000"
        assert response.headers["x-ratelimit-limit-parallel"] == "3"
