"""Tokens scoped to one evaluation run.

The worker issues one when a run starts and deletes it when the run ends; Redis's expiry
is only the backstop for a worker that died mid-run. The token lives in Redis and not in
the team table, so it can never open anything but the gateway: the API and pages look
tokens up in the team table, where it does not exist.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from portal.core.security import hash_token
from portal.llm.budgets import free_tagged_leases

RUN_TOKEN_PREFIX = "ptr_"  # team tokens start with "pt_": the two never collide
KEY_PREFIX = "llm:run_token"
# A run whose worker vanished keeps its token at most this long past the deadline.
EXPIRY_MARGIN_SECONDS = 60
ENDED = "This evaluation token has expired: the run it belonged to ended."


@dataclass(frozen=True)
class RunGrant:
    team_id: int
    batch_submission_id: int | None


def is_run_token(token: str) -> bool:
    return token.startswith(RUN_TOKEN_PREFIX)


def key(token: str) -> str:
    """The token's Redis key: while it exists, the run has not ended."""
    return f"{KEY_PREFIX}:{hash_token(token)}"


def issue(
    redis: Redis, team_id: int, batch_submission_id: int | None, timeout_seconds: float
) -> str:
    """Create a token for one run (sync Redis client: the worker's)."""
    token = RUN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    ttl = int(timeout_seconds) + EXPIRY_MARGIN_SECONDS
    redis.set(key(token), f"{team_id}:{batch_submission_id or ''}", ex=ttl)
    return token


def lease_tag(token: str) -> str:
    """What marks the parallel slots a run's calls take, so they go when the run ends."""
    return "run-" + hash_token(token)[:16]


def revoke(redis: Redis, token: str, team_id: int) -> None:
    """End the token, and free the slots of any call still in flight with it: the run's
    container has ended, whatever the gateway has not noticed yet.

    In this order: a call that takes its slot after the delete is refused (the take
    checks the key in the same step), one that took it before is freed here."""
    redis.delete(key(token))
    free_tagged_leases(redis, team_id, lease_tag(token))


async def resolve(redis: AsyncRedis, token: str) -> RunGrant | None:
    value = await redis.get(key(token))
    if value is None:
        return None
    assert isinstance(value, bytes)  # create_redis: decode_responses=False
    team_id, _, batch_submission_id = value.decode().partition(":")
    return RunGrant(int(team_id), int(batch_submission_id) if batch_submission_id else None)
