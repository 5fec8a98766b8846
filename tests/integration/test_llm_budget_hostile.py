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

from tests.fixtures.llm import CHAT_URL

# One character per token for the stand-in model (and near that for real tokenizers:
# rare symbols), three times what a third of the body's bytes estimates.
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


async def set_budgets(client: httpx.AsyncClient, admin, team, **limits) -> httpx.Response:
    return await client.put(f"/api/v1/teams/{team.id}/llm-limit", json=limits, headers=admin.auth)


async def in_use(client: httpx.AsyncClient, team) -> dict:
    response = await client.get("/api/v1/usage", headers=team.auth)
    assert response.status_code == 200, response.text
    return response.json()["in_use"]


def redis_minute(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    seconds, _ = client.time()
    client.close()
    return seconds // 60


async def test_concurrent_limit_changes_all_succeed_and_the_audit_chains_each_to_the_last(
    client, teams
):
    admin, team = await teams.admin(), await teams.create()
    answers = await asyncio.gather(
        *(set_budgets(client, admin, team, requests_per_minute=5 + i) for i in range(8))
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
    answer = await set_budgets(client, admin, team, max_parallel=value)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "max_parallel"
    unchanged = await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)
    assert unchanged.json()["overridden"] == []
