"""The gateway's budgets against a team trying to get more than its share, and an
admin making mistakes: prompts whose real token count outruns the reservation's
estimate, bodies an upstream may read differently from the gateway, and limit changes
sent at once. Against the real stand-in model, Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
import redis

from tests.fixtures.llm import CHAT_URL, budget_use, chat, gateway_to, set_budgets, usage_rows
from tests.fixtures.servers import Handler, ScriptedServer, answer_with
from tests.fixtures.services import room_in_the_minute

# One character per token for the stand-in model (and near that for real tokenizers:
# rare symbols): the densest a prompt can be.
DENSE = "!" * 600


@pytest.fixture
def settings(settings):
    # A limit an admin sets applies to the team's very next call.
    return settings.model_copy(update={"llm_auth_cache_seconds": 0})


async def call(client: httpx.AsyncClient, team, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        CHAT_URL, content=content, headers={**team.auth, "content-type": "application/json"}
    )


async def put_limits(client: httpx.AsyncClient, admin, team, **limits) -> httpx.Response:
    return await client.put(f"/api/v1/teams/{team.id}/llm-limit", json=limits, headers=admin.auth)


def redis_minute(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    seconds, _ = client.time()
    client.close()
    return seconds // 60


async def test_a_burst_of_prompts_dense_in_tokens_never_spends_more_than_the_minutes_budget(
    app, client, teams, services
):
    """Prompts of one token per byte (the densest text can be) sent all at once: what the
    model counted, summed over the allowed calls, stays within the minute's budget."""
    admin, team = await teams.admin(), await teams.create()
    limit = 3000
    await set_budgets(
        client, admin, team, tokens_per_minute=limit, requests_per_minute=1000, max_parallel=50
    )
    room_in_the_minute(services.redis_url, seconds_needed=20)

    burst = await asyncio.gather(
        *(call(client, team, chat(DENSE, max_tokens=1)) for _ in range(30))
    )
    statuses = [r.status_code for r in burst]
    assert 200 in statuses and set(statuses) <= {200, 429}
    rows = await usage_rows(app, team.id)
    spent = sum(row.prompt_tokens + row.completion_tokens for row in rows)
    assert 0 < spent <= limit
    now = await budget_use(client, team)
    assert now["tokens_this_minute"] == now["tokens_today"] == spent
    assert now["tokens_owed"] == 0


def reports_usage(prompt_tokens: object, completion_tokens: object = 1) -> Handler:
    """A model that reports `prompt_tokens` for any body, however short (as an image
    part costs a fixed number of tokens whatever its URL's length)."""
    body = json.dumps(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "model": "echo",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }
    ).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    return answer_with(head + f"content-length: {len(body)}\r\n\r\n".encode() + body)


async def test_tokens_a_model_reports_beyond_any_reservation_are_owed_to_the_next_minutes(
    settings, services
):
    limit = 3000
    async with (
        ScriptedServer(reports_usage(7000)) as upstream,
        gateway_to(settings, f"{upstream.url}/v1") as (client, teams),
    ):
        admin, team = await teams.admin(), await teams.create()
        await set_budgets(client, admin, team, tokens_per_minute=limit)
        room_in_the_minute(services.redis_url, seconds_needed=20)
        minute = redis_minute(services.redis_url)
        allowed = await call(client, team, chat(max_tokens=1))
        assert allowed.status_code == 200, allowed.text
        now = await budget_use(client, team)
        # This minute holds no more than its budget; nothing spent is forgiven.
        assert now["tokens_this_minute"] == limit
        assert now["tokens_owed"] == 7001 - limit
        assert now["tokens_today"] == 7001
        refused = await call(client, team, chat(max_tokens=1))
        assert refused.status_code == 429, refused.text

        # The next minute starts with what was owed, up to its whole budget.
        await asyncio.to_thread(room_in_the_minute, services.redis_url, 60)  # the next one
        assert redis_minute(services.redis_url) == minute + 1
        later = await budget_use(client, team)
        assert later["tokens_this_minute"] == limit
        assert later["tokens_owed"] == 7001 - 2 * limit


@pytest.mark.parametrize(
    "reported",
    [([5], 1), (-500, 1), (1, -500), (float("inf"), 1), (True, 1), ("12", 1), (10**12, 1)],
    ids=["list", "negative-prompt", "negative-completion", "infinite", "bool", "text", "huge"],
)
async def test_usage_a_model_reports_that_is_not_a_count_keeps_the_reservation(settings, reported):
    """A usage that is not two whole counts in range answers the call, logs no tokens
    and keeps the call charged as reserved, instead of a 500 or lowering the counters."""
    async with (
        ScriptedServer(reports_usage(*reported)) as upstream,
        gateway_to(settings, f"{upstream.url}/v1") as (client, teams),
    ):
        team = await teams.create()
        body = chat(max_tokens=5)
        answered = await call(client, team, body)
        assert answered.status_code == 200, answered.text
        use = await budget_use(client, team)
        assert use["tokens_this_minute"] == 5 + len(json.dumps(body).encode())


async def test_the_stand_in_model_stops_at_max_tokens_as_a_real_model_does(client, teams):
    team = await teams.create()
    answer = await call(client, team, chat("one two three four five six", max_tokens=3))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["usage"]["completion_tokens"] == 3
    assert body["choices"][0]["message"]["content"] == "echo: one"
    assert body["choices"][0]["finish_reason"] == "length"

    newer = await call(client, team, chat("one two three", max_completion_tokens=4, max_tokens=50))
    assert newer.json()["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize("stream", ["true", 1, "yes", {"on": True}, None])
async def test_stream_other_than_true_or_false_is_refused_before_it_costs_anything(
    app, client, teams, stream
):
    # An upstream that reads "true" or 1 as true would stream while the gateway,
    # expecting JSON, could not read the usage: the call would be logged as 0 tokens.
    team = await teams.create()
    answer = await call(client, team, {**chat(), "stream": stream})
    if stream is None:  # null is "not set", as OpenAI reads it
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "stream"
    assert "true or false" in error["message"]
    assert (await budget_use(client, team))["requests_this_minute"] == 0
    (row,) = await usage_rows(app, team.id)
    assert row.status_code == 400


async def test_a_call_reserves_the_larger_of_max_tokens_and_max_completion_tokens(client, teams):
    # Many OpenAI-compatible servers read only max_tokens: a small max_completion_tokens
    # beside a large max_tokens must not reserve the small one.
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, tokens_per_minute=1000)
    refused = await call(client, team, chat(max_completion_tokens=1, max_tokens=5000))
    assert refused.status_code == 429, refused.text
    assert "tokens (5000 for the answer" in refused.json()["error"]["message"]

    fits = await call(client, team, chat(max_completion_tokens=10, max_tokens=5))
    assert fits.status_code == 200, fits.text


async def test_duplicate_keys_in_a_chat_body_are_refused_so_no_upstream_reads_another_model(
    app, client, teams
):
    # Python keeps the last of two equal keys; parsers that keep the first exist, and
    # the JSON body goes upstream byte for byte: the allowlist would check one model
    # while the upstream answered with the other.
    admin, team = await teams.admin(), await teams.create()
    await set_budgets(client, admin, team, models=["echo-latest"])
    smuggled = (
        b'{"model": "echo", "model": "echo-latest", '
        b'"messages": [{"role": "user", "content": "hi"}]}'
    )
    answer = await call(client, team, smuggled)
    assert answer.status_code == 400, answer.text
    assert "'model' appears more than once" in answer.json()["error"]["message"]
    assert (await budget_use(client, team))["requests_this_minute"] == 0

    nested = b'{"model": "echo-latest", "messages": [{"role": "user", "role": "system"}]}'
    answer = await call(client, team, nested)
    assert answer.status_code == 400, answer.text
    assert "'role' appears more than once" in answer.json()["error"]["message"]


async def test_concurrent_limit_changes_all_succeed_and_the_audit_chains_each_to_the_last(
    client, teams
):
    admin, team = await teams.admin(), await teams.create()
    answers = await asyncio.gather(
        *(put_limits(client, admin, team, requests_per_minute=5 + i) for i in range(8))
    )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]

    entries = (await client.get("/api/v1/audit?action=llm.rate_limit", headers=admin.auth)).json()[
        "items"
    ]
    changes = [e["details"] for e in reversed(entries) if e["target_id"] == str(team.id)]
    assert len(changes) == 8
    assert changes[0]["previous"]["requests_per_minute"] is None
    for before, after in itertools.pairwise(changes):
        assert after["previous"] == before["limits"]
    final = (await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)).json()
    assert final["requests_per_minute"] == changes[-1]["limits"]["requests_per_minute"]


@pytest.mark.parametrize("value", [True, "10", "1_000", 10.0])
async def test_a_limit_that_is_not_a_json_whole_number_is_refused(client, teams, value):
    admin, team = await teams.admin(), await teams.create()
    answer = await put_limits(client, admin, team, max_parallel=value)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "max_parallel"
    unchanged = await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)
    assert unchanged.json()["overridden"] == []
