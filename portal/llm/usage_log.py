"""The usage log, written off the request path.

A gateway call appends one entry to an in-memory buffer and returns; a background task
writes the buffer in one multi-row INSERT at least every `interval` seconds. When the
database is away the entries stay buffered (up to a cap) and go in once it is back, and
shutdown writes whatever is left before the process exits.

An entry the database refuses (whatever slipped past the cleaning in `record`) must not
hold the others hostage: when a batch fails for any reason but the database being away,
it is written again row by row, each in its own savepoint, and only the refused rows are
dropped, each logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import sqlalchemy as sa
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.core.text import storable_text
from portal.core.time import utcnow
from portal.llm.models import LlmUsageLog

logger = logging.getLogger(__name__)

# About 50 MB of entries: hours of traffic at the default limits.
MAX_BUFFERED = 200_000

# Declarative sets __table__ on every table class; SQLModel's typing does not declare it.
_TABLE: sa.Table = LlmUsageLog.__table__  # type: ignore[attr-defined]
_INSERT = sa.insert(_TABLE)

# Every text column with its length limit (None: unbounded), read from the table itself.
_TEXT_COLUMNS = {
    column.name: getattr(column.type, "length", None)
    for column in _TABLE.columns
    if isinstance(column.type, sa.String)
}


class TokenUsage(TypedDict, total=False):
    """The tokens an upstream answer reports (neither when it reports none)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass
class UsageEntry:
    team_id: int
    model: str
    status_code: int
    outcome: str  # allowed | refused | failed
    latency_ms: float
    refusal: str | None = None  # requests | tokens | parallel | model, when refused
    answered_model: str | None = None
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
        self.dropped = 0  # pushed out of a full buffer
        self.refused = 0  # refused by the database, row by row

    def record(self, entry: UsageEntry) -> None:
        # vars(), not asdict(): asdict deep-copies every value, the datetime included.
        row = dict(vars(entry))
        if row["created_at"] is None:
            row["created_at"] = utcnow()
        # The model name is whatever the caller sent: clean every text value, so one
        # call cannot produce a row PostgreSQL refuses.
        for name, max_chars in _TEXT_COLUMNS.items():
            if isinstance(row[name], str):
                row[name] = storable_text(row[name], max_chars)
        if len(self._buffer) >= MAX_BUFFERED:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(row)

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
                await self._write(rows)
            except BaseException as exc:
                # Failed, or cancelled from outside (stop() never cancels): keep the rows.
                logger.warning("llm usage log: %s entries kept for retry (%r)", len(rows), exc)
                self._buffer.extendleft(reversed(rows))
                if not isinstance(exc, Exception):
                    raise
                return False
            return not self._buffer

    async def _write(self, rows: list[dict]) -> None:
        """Insert `rows`, dropping only those whose data the database refuses; raise (so
        every row is kept) for anything else: the database away, read-only, missing
        the table or a grant all pass, and the same rows will go in then."""
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_INSERT, rows)
            return
        except Exception as exc:
            if not _refuses_the_data(exc):
                raise
            logger.warning(
                "llm usage log: a batch of %s entries was refused (%r); writing them one by one",
                len(rows),
                exc,
            )
        # One transaction: if anything but a row's data fails midway, nothing is written
        # and every row goes back to the buffer, as for a failed batch.
        dropped = []
        async with self._engine.begin() as connection:
            for row in rows:
                try:
                    async with connection.begin_nested():
                        await connection.execute(_INSERT, row)
                except Exception as exc:
                    if not _refuses_the_data(exc):
                        raise
                    dropped.append((row, exc))
        # Counted once the others are in: a rolled-back attempt drops nothing.
        self.refused += len(dropped)
        for row, refusal in dropped:
            logger.error(
                "llm usage log: entry dropped, the database refuses it (%r): %r", refusal, row
            )

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if not self._stopping.is_set():
                await self.flush()


def _refuses_the_data(exc: BaseException) -> bool:
    """Whether `exc` is about a row's values (a constraint, a value the column cannot
    hold, text the driver cannot encode), so writing that row again can never work."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        exc = exc.orig or exc  # the driver refused to send it, e.g. an unencodable string
    return isinstance(exc, DataError | IntegrityError | ValueError)
