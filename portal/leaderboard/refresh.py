"""Refreshing the leaderboard view: concurrently, debounced, never two at once.

Results call `request_refresh` after they commit. At most one refresh is scheduled per
second (a Redis key with a 1 s expiry), it runs in the worker as a delayed message, and
an advisory lock keeps two refreshes from overlapping across every worker. Each refresh
bumps a version number in Redis: the ETag pages and pollers compare against.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from dramatiq import Broker
from redis import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from portal.core import metrics
from portal.core.db import after_commit
from portal.evaluation.queue import enqueue_leaderboard_refresh

VERSION_KEY = "leaderboard:version"
REFRESHED_AT_KEY = "leaderboard:refreshed_at"
SCHEDULED_KEY = "leaderboard:refresh_scheduled"
REFRESH_ACTOR = "refresh_leaderboard"
DEBOUNCE_MS = 1000
REFRESH_LOCK = 7_341_002
# Per-batch rankings (ranking.sql) and the competition's boards (standings.sql).
VIEWS = ("leaderboard", "standings")


class LocalChanges:
    """Counts changes to the boards made in this process (a refresh, a competition
    change), so what this process remembers of the boards' state is dropped at once
    after them. Other processes see a change within their BoardStateMemory's half second."""

    count = 0

    @classmethod
    def note(cls) -> None:
        cls.count += 1


def refresh(engine: sa.Engine, redis: Redis) -> bool:
    """Refresh now unless another refresh is running; True if this one ran."""
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if not connection.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": REFRESH_LOCK}):
            return False
        try:
            started = time.perf_counter()
            # CONCURRENTLY: readers keep seeing the previous contents meanwhile.
            for view in VIEWS:
                connection.execute(sa.text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))
            metrics.observe_leaderboard_refresh(time.perf_counter() - started, time.time())
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": REFRESH_LOCK})
    pipe = redis.pipeline()
    pipe.incr(VERSION_KEY)
    pipe.set(REFRESHED_AT_KEY, f"{time.time():.3f}")
    pipe.execute()
    LocalChanges.note()
    return True


def should_schedule(redis: Redis) -> bool:
    """True for the first caller in each debounce window."""
    return bool(redis.set(SCHEDULED_KEY, b"1", nx=True, px=DEBOUNCE_MS))


def refresh_after_commit(session: AsyncSession, broker: Broker) -> None:
    """Refresh the boards as soon as `session` commits: for changes outside evaluation
    (a team deactivated or activated) that move teams off or onto every board."""

    async def send() -> None:
        await run_in_threadpool(enqueue_leaderboard_refresh, broker, 0)

    after_commit(session, send)
