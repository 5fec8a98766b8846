"""What /metrics reads fresh at each scrape: the evaluation queue from the database and
the live workers from Redis.

Each read is bounded in time and may fail on its own: a scrape reports what it could
read, and `portal_metrics_source_up{source}` says which source it could not, instead of
hanging or failing as a whole while the database is away (when operators need the
metrics most).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.evaluation.models import BatchKind, RunStatus
from portal.evaluation.runs import UNFINISHED_BY_KIND
from portal.evaluation.workers import known_workers_async

logger = logging.getLogger(__name__)
SOURCE_TIMEOUT_SECONDS = 2.0
QUEUES = ("public", "batch")  # uploads' public scores / admin batches and the final


async def _evaluation_queue(engine: AsyncEngine) -> list[Metric]:
    async with engine.connect() as connection:
        # Bounded on the server too, so slow scrapes never pile up queries behind them.
        timeout_ms = int(SOURCE_TIMEOUT_SECONDS * 1000)
        await connection.execute(sa.text(f"SET LOCAL statement_timeout = {timeout_ms}"))
        rows = (await connection.execute(UNFINISHED_BY_KIND)).all()
    counts: dict[tuple[str, str], int] = {}
    for kind, status, count, _ in rows:
        queue = "public" if kind == BatchKind.public else "batch"
        counts[queue, status] = counts.get((queue, status), 0) + count
    queued = GaugeMetricFamily(
        "portal_evaluation_queue_depth", "Runs waiting for a worker", labels=["queue"]
    )
    running = GaugeMetricFamily(
        "portal_evaluation_runs_in_progress", "Runs a worker is running now", labels=["queue"]
    )
    for queue in QUEUES:
        queued.add_metric([queue], counts.get((queue, RunStatus.queued), 0))
        running.add_metric([queue], counts.get((queue, RunStatus.running), 0))
    return [queued, running]


async def _workers(redis: Redis, now: datetime, stale_after_seconds: float) -> list[Metric]:
    alive = [
        beat
        for beat in await known_workers_async(redis, now)
        if beat.is_alive(now, stale_after_seconds)
    ]
    return [
        GaugeMetricFamily(
            "portal_evaluation_workers_alive",
            "Evaluation worker processes that reported in recently",
            value=len(alive),
        ),
        GaugeMetricFamily(
            "portal_evaluation_worker_threads",
            "Threads of the live worker processes: runs they can run at once",
            value=sum(beat.threads for beat in alive),
        ),
    ]


async def scrape(
    engine: AsyncEngine, redis: Redis, now: datetime, stale_after_seconds: float
) -> list[Metric]:
    reads: dict[str, Awaitable[list[Metric]]] = {
        "database": _evaluation_queue(engine),
        "redis": _workers(redis, now, stale_after_seconds),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(read, SOURCE_TIMEOUT_SECONDS) for read in reads.values()),
        return_exceptions=True,
    )
    families: list[Metric] = []
    up = GaugeMetricFamily(
        "portal_metrics_source_up",
        "Whether this scrape could read the source (0: its values are missing)",
        labels=["source"],
    )
    for source, result in zip(reads, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # cancelled: the scrape itself is going away
            logger.warning(
                "metrics: could not read the %s: %s: %s", source, type(result).__name__, result
            )
            up.add_metric([source], 0)
        else:
            families.extend(result)
            up.add_metric([source], 1)
    return [*families, up]
