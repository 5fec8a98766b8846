"""Which evaluation workers are alive: each worker process beats into one Redis hash.

The System page, `/metrics` and the operators read it; the database's per-run heartbeat
says what a worker is running, this says that the process itself is there (an idle
worker has no run to beat on). Entries of workers gone quiet for a day are dropped.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

WORKERS_KEY = "portal:workers"
FORGET_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str  # host:pid:random, as on the runs it claims
    host: str
    pid: int
    threads: int
    runner: str  # docker | process
    started_at: datetime
    beat_at: datetime

    def is_alive(self, now: datetime, stale_after_seconds: float) -> bool:
        return (now - self.beat_at).total_seconds() <= stale_after_seconds


def beat(redis: Redis, *, worker_id: str, threads: int, runner: str, started_at: datetime) -> None:
    """Called by the worker process itself, about every few seconds."""
    entry = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": threads,
        "runner": runner,
        "started_at": started_at.isoformat(),
        "beat_at": datetime.now(UTC).isoformat(),
    }
    redis.hset(WORKERS_KEY, worker_id, json.dumps(entry))


def forget(redis: Redis, worker_id: str) -> None:
    """A worker shutting down cleanly leaves the list at once."""
    redis.hdel(WORKERS_KEY, worker_id)


def _aware(text: Any) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a beat's instants carry their offset")
    return moment


def _parse(raw: dict[Any, Any], now: datetime) -> tuple[list[WorkerBeat], list[Any]]:
    """The readable beats, and the raw keys to drop: entries gone quiet for a day and
    entries not ours to read (written by another version or by something else)."""
    beats, forgotten = [], []
    for key, value in raw.items():
        try:
            entry = json.loads(value)
            found = WorkerBeat(
                worker_id=key.decode() if isinstance(key, bytes) else str(key),
                host=str(entry["host"]),
                pid=int(entry["pid"]),
                threads=int(entry["threads"]),
                runner=str(entry["runner"]),
                started_at=_aware(entry["started_at"]),
                beat_at=_aware(entry["beat_at"]),
            )
            quiet_for = (now - found.beat_at).total_seconds()
        except (ValueError, KeyError, TypeError, OverflowError):
            forgotten.append(key)
            continue
        if quiet_for > FORGET_AFTER_SECONDS:
            forgotten.append(key)
        else:
            beats.append(found)
    beats.sort(key=lambda found: (found.host, found.pid, found.worker_id))
    return beats, forgotten


def known_workers(redis: Redis, now: datetime | None = None) -> list[WorkerBeat]:
    beats, forgotten = _parse(redis.hgetall(WORKERS_KEY), now or datetime.now(UTC))
    if forgotten:
        redis.hdel(WORKERS_KEY, *forgotten)
    return beats


async def known_workers_async(redis: AsyncRedis, now: datetime | None = None) -> list[WorkerBeat]:
    beats, forgotten = _parse(await redis.hgetall(WORKERS_KEY), now or datetime.now(UTC))
    if forgotten:
        await redis.hdel(WORKERS_KEY, *forgotten)
    return beats
