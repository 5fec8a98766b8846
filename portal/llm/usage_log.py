"""The usage log, written off the request path.

A gateway call appends one entry to an in-memory buffer and returns; a background task
writes the buffer in one multi-row INSERT at least every `interval` seconds. When the
database is away the entries stay buffered (up to a cap) and go in once it is back, and
shutdown writes whatever is left before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.core.time import utcnow
from portal.llm.models import LlmUsageLog

logger = logging.getLogger(__name__)

# About 50 MB of entries: hours of traffic at the default limits.
MAX_BUFFERED = 200_000


@dataclass
class UsageEntry:
    team_id: int
    model: str
    status_code: int
    outcome: str  # allowed | refused | failed
    latency_ms: float
    source: str = "dev"  # dev | eval
    batch_submission_id: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_id: str | None = None
    created_at: datetime | None = None


class UsageRecorder:
    def __init__(self, engine: AsyncEngine, interval: float = 0.5) -> None:
        self._engine = engine
        self._interval = interval
        self._buffer: deque[dict] = deque()
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.dropped = 0

    def record(self, entry: UsageEntry) -> None:
        if entry.created_at is None:
            entry.created_at = utcnow()
        entry.model = entry.model[:120]
        if len(self._buffer) >= MAX_BUFFERED:
            self._buffer.popleft()
            self.dropped += 1
        # vars(), not asdict(): asdict deep-copies every value, the datetime included.
        self._buffer.append(dict(vars(entry)))

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llm-usage-flush")

    async def stop(self, attempts: int = 10) -> None:
        """Stop the timer, then write everything still buffered, retrying a little.

        The timer is asked to stop, never cancelled: a cancel landing inside a flush
        would abandon an INSERT holding rows already taken from the buffer.
        """
        self._stopping.set()
        if self._task is not None:
            await self._task
        for _ in range(attempts):
            if await self.flush():
                return
            await asyncio.sleep(0.5)
        if self._buffer:
            logger.error("llm usage log: %s entries could not be written", len(self._buffer))

    async def flush(self) -> bool:
        """Write the buffer; on failure keep it for the next try. True when empty after."""
        async with self._lock:
            if not self._buffer:
                return True
            rows = list(self._buffer)
            self._buffer.clear()
            try:
                async with self._engine.begin() as connection:
                    await connection.execute(sa.insert(LlmUsageLog.__table__), rows)
            except BaseException as exc:
                # Failed, or cancelled from outside (stop() never cancels): keep the rows.
                logger.warning("llm usage log: %s entries kept for retry (%r)", len(rows), exc)
                self._buffer.extendleft(reversed(rows))
                if not isinstance(exc, Exception):
                    raise
                return False
            return not self._buffer

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if not self._stopping.is_set():
                await self.flush()
