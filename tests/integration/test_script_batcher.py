"""The batcher that runs the gateway's budget scripts, as its callers come and go
(real Redis)."""

from __future__ import annotations

import asyncio

from portal.core.redis import create_redis
from portal.llm.budgets import TeamBudgets
from tests.fixtures.llm import ROOMY_BUDGETS as BUDGETS
from tests.fixtures.llm import SOME_DAY as TODAY

TEAM = 1


async def test_a_caller_that_stops_waiting_takes_nothing_but_still_settles(services):
    """A call cancelled while its take waits behind another takes nothing (nobody
    would settle it: its tokens would stay reserved all day); a call cancelled while
    its settle waits is settled all the same."""
    redis = create_redis(services.redis_url)
    budgets = TeamBudgets(redis, lease_seconds=300)
    try:
        first = asyncio.ensure_future(budgets.take(TEAM, BUDGETS, 10, TODAY, lease_tag="dev"))
        await asyncio.sleep(0)  # on its way to Redis: the next take waits for it
        abandoned = asyncio.ensure_future(budgets.take(TEAM, BUDGETS, 10, TODAY, lease_tag="dev"))
        await asyncio.sleep(0)
        abandoned.cancel()
        reservation = (await first).reservation
        assert reservation is not None
        state = await budgets.peek(TEAM, BUDGETS, TODAY)
        assert (state.requests, state.minute_tokens, state.parallel) == (1, 10, 1)

        second = (await budgets.take(TEAM, BUDGETS, 10, TODAY, lease_tag="dev")).reservation
        assert second is not None
        settling = asyncio.ensure_future(budgets.settle(reservation, 4))
        await asyncio.sleep(0)  # on its way to Redis: the next settle waits for it
        given_up = asyncio.ensure_future(budgets.settle(second, 3))
        await asyncio.sleep(0)
        given_up.cancel()
        await settling
        state = await budgets.peek(TEAM, BUDGETS, TODAY)
        assert (state.requests, state.minute_tokens, state.parallel) == (2, 7, 0)
    finally:
        await redis.aclose()
