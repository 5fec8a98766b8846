"""A run's parallel slots are freed by its tag, and only its own (real Redis)."""

from __future__ import annotations

import pytest
import redis as sync_redis
from starlette.requests import Request

from portal.core.redis import create_redis
from portal.llm import run_tokens
from portal.llm.budgets import TeamBudgets, free_tagged_leases
from portal.llm.gateway.errors import GatewayError
from tests.fixtures.llm import ROOMY_BUDGETS as BUDGETS
from tests.fixtures.llm import SOME_DAY as TODAY


async def test_freeing_a_runs_tag_frees_its_slots_and_no_other_call(services):
    redis = create_redis(services.redis_url)
    budgets = TeamBudgets(redis, lease_seconds=300)
    worker_redis = sync_redis.Redis.from_url(services.redis_url)
    team, other_team = 1, 2
    held = {}
    try:
        # The run's two calls, the team's own dev call, another run of the same team
        # whose tag starts with this run's tag, and another team's call with this tag.
        for name, team_id, tag in (
            ("run call 1", team, "run-aaaa"),
            ("run call 2", team, "run-aaaa"),
            ("dev call", team, "dev"),
            ("other run", team, "run-aaaab"),
            ("other team", other_team, "run-aaaa"),
        ):
            state = await budgets.take(team_id, BUDGETS, 10, TODAY, lease_tag=tag)
            assert state.reservation is not None, name
            held[name] = state.reservation

        assert free_tagged_leases(worker_redis, team, "run-aaaa") == 2

        assert (await budgets.peek(team, BUDGETS, TODAY)).parallel == 2
        assert (await budgets.peek(other_team, BUDGETS, TODAY)).parallel == 1
        remaining = {lease.decode() for lease in await redis.zrange(f"llm:par:{team}", 0, -1)}
        assert remaining == {held["dev call"].lease, held["other run"].lease}
        # The run's calls settle late (their upstream answered after the run ended):
        # that frees nothing else and takes back no slot.
        for name in ("run call 1", "run call 2"):
            await budgets.settle(held[name], 5)
            await budgets.renew(held[name])
        assert (await budgets.peek(team, BUDGETS, TODAY)).parallel == 2
        # Nothing left with the tag: freeing again is harmless.
        assert free_tagged_leases(worker_redis, team, "run-aaaa") == 0
    finally:
        worker_redis.close()
        await redis.aclose()


async def test_a_run_call_let_in_just_before_its_run_ended_takes_nothing(app, teams, services):
    """The gateway checks a run's token, then takes its share of the budgets: a run
    that ends in between must not leave that share held until the lease lapses."""
    team = await teams.create()
    gateway = app.state.llm_gateway
    worker_redis = sync_redis.Redis.from_url(services.redis_url)
    token = run_tokens.issue(worker_redis, team.id, None, timeout_seconds=10)
    call = Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})
    try:
        caller = await gateway.caller(call)  # the token is still good
        run_tokens.revoke(worker_redis, token, team.id)  # the run ends, its slots freed
        with pytest.raises(GatewayError) as refused:
            await gateway.take(caller, 100)
    finally:
        worker_redis.close()
    assert refused.value.status_code == 401
    assert "run it belonged to ended" in refused.value.body["error"]["message"]
    in_use = await gateway.use(team.id, caller.budgets)
    assert (in_use.parallel, in_use.requests, in_use.day_tokens) == (0, 0, 0)
