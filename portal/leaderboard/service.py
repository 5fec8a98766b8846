"""A batch's own ranking (an admin view, `GET /api/v1/leaderboard?batch=N`), the boards'
version, and the sparkline: read from the materialized views only, so a poll costs one
indexed query (or nothing at all, when the ETag still matches).

How teams are ranked in a batch (best submission, ties, runs done) is the view's query,
in ranking.sql beside this module; the competition's boards are in standings.py.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from portal.competition import service as competition_service
from portal.competition.phases import CompetitionState
from portal.core.pagination import Page, PageParams, paginate, search
from portal.evaluation.models import BatchStatus, EvaluationBatch
from portal.leaderboard.refresh import REFRESHED_AT_KEY, VERSION_KEY, LocalChanges
from portal.teams.models import Team

leaderboard = sa.table(
    "leaderboard",
    sa.column("batch_id", sa.Integer),
    sa.column("team_id", sa.Integer),
    sa.column("submission_id", sa.Integer),
    sa.column("score", sa.Float),
    sa.column("submitted_at", sa.DateTime(timezone=True)),
    sa.column("scored_at", sa.DateTime(timezone=True)),
    sa.column("runs_done", sa.Integer),
    sa.column("runs_total", sa.Integer),
    sa.column("rank", sa.Integer),
    sa.column("position", sa.Integer),
)
STARTED = (BatchStatus.running, BatchStatus.finished, BatchStatus.cancelled)


@dataclass(frozen=True)
class BoardRow:
    rank: int | None
    team_id: int
    team_name: str
    score: float | None
    submission_id: int | None
    submitted_at: datetime | None
    runs_done: int
    runs_total: int
    previous_rank: int | None

    @property
    def change(self) -> int | None:
        """Places gained since the previous batch (positive is up)."""
        if self.rank is None or self.previous_rank is None:
            return None
        return self.previous_rank - self.rank


@dataclass(frozen=True)
class BoardView:
    """One batch's ranking and its progress."""

    batch: EvaluationBatch | None
    rows: Page[BoardRow]
    runs_done: int
    runs_total: int
    version: int


async def state(redis: Redis) -> tuple[int, float | None]:
    version, refreshed_at = await redis.mget(VERSION_KEY, REFRESHED_AT_KEY)
    return int(version or 0), float(refreshed_at) if refreshed_at else None


@dataclass(frozen=True)
class BoardState:
    """What every board poll reads first: the boards' version and the competition."""

    version: int
    refreshed_at: float | None
    competition: CompetitionState


@functools.lru_cache(maxsize=8)
def _parse_competition(cached: bytes) -> CompetitionState:
    # Every poll reads the same cached JSON until the competition changes: parse it once.
    return CompetitionState.model_validate_json(cached)


class BoardStateMemory:
    """What this app last read of the boards' state, kept for a moment.

    The Redis round trip was most of a 304's cost, so polls within STATE_MEMORY_SECONDS
    of a read reuse it: a board shows a change up to that much later (screens poll every
    2 s), and at once after a change made in this process (LocalChanges). One per app,
    so test apps in one process never see each other's.
    """

    def __init__(self) -> None:
        self._remembered: tuple[float, int, BoardState] | None = None

    async def read(
        self, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> BoardState:
        now = time.monotonic()
        if self._remembered is not None:
            read_at, changes, state = self._remembered
            if changes == LocalChanges.count and now - read_at < STATE_MEMORY_SECONDS:
                return state
        changes = LocalChanges.count
        state = await board_state(redis, sessionmaker)
        self._remembered = (now, changes, state)
        return state


STATE_MEMORY_SECONDS = 0.5


async def board_state(redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]) -> BoardState:
    """One Redis round trip: the version, then the competition's cached state (read
    through competition.service.current, from the database, only on a miss)."""
    version, refreshed_at, cached = await redis.mget(
        VERSION_KEY, REFRESHED_AT_KEY, competition_service.CACHE_KEY
    )
    if cached:
        competition = _parse_competition(cached)
    else:
        async with sessionmaker() as session:
            competition = await competition_service.current(session, redis)
    return BoardState(
        version=int(version or 0),
        refreshed_at=float(refreshed_at) if refreshed_at else None,
        competition=competition,
    )


async def started_batches(session: AsyncSession) -> list[EvaluationBatch]:
    result = await session.scalars(
        sa.select(EvaluationBatch)
        .where(col(EvaluationBatch.status).in_(STARTED))
        .order_by(
            col(EvaluationBatch.started_at).desc(),
            col(EvaluationBatch.id).desc(),
        )
    )
    return list(result)


async def choose_batch(
    session: AsyncSession, batch_id: int | None
) -> tuple[EvaluationBatch | None, EvaluationBatch | None, list[EvaluationBatch]]:
    """The asked-for batch, else the latest started one; and the one before it."""
    batches = await started_batches(session)
    chosen = next((b for b in batches if b.id == batch_id), None) if batch_id else None
    chosen = chosen or (batches[0] if batches else None)
    previous = None
    if chosen is not None:
        earlier = [
            b
            for b in batches
            if b.started_at and chosen.started_at and b.started_at < chosen.started_at
        ]
        previous = earlier[0] if earlier else None
    return chosen, previous, batches


def board_statement(
    batch: EvaluationBatch, previous: EvaluationBatch | None, query: str | None = None
) -> sa.Select[tuple[object, ...]]:
    """A batch's ranking in order, in BoardRow's order, with each team's rank in
    `previous`: what the batch board shows and the CSV export writes."""
    before = leaderboard.alias("before")
    conditions = [leaderboard.c.batch_id == batch.id, *search(query, col(Team.name))]
    return (
        sa.select(
            leaderboard.c.rank,
            leaderboard.c.team_id,
            col(Team.name),
            leaderboard.c.score,
            leaderboard.c.submission_id,
            leaderboard.c.submitted_at,
            leaderboard.c.runs_done,
            leaderboard.c.runs_total,
            before.c.rank,
        )
        .join(Team, col(Team.id) == leaderboard.c.team_id)
        .outerjoin(
            before,
            sa.and_(
                before.c.batch_id == (previous.id if previous else -1),
                before.c.team_id == leaderboard.c.team_id,
            ),
        )
        .where(*conditions)
        .order_by(leaderboard.c.position)
    )


async def board(
    session: AsyncSession,
    batch: EvaluationBatch,
    previous: EvaluationBatch | None,
    page: PageParams,
    query: str | None = None,
) -> Page[BoardRow]:
    statement = board_statement(batch, previous, query)
    return await paginate(session, statement, page, lambda row: BoardRow(*row))


async def board_view(
    session: AsyncSession, batch_id: int | None, q: str, params: PageParams, version: int
) -> BoardView:
    """The ranking of `batch_id` (None: the latest started batch)."""
    chosen, previous, _ = await choose_batch(session, batch_id)
    rows = await board(session, chosen, previous, params, q) if chosen else Page.empty(params)
    done, total = await batch_progress(session, chosen.id) if chosen else (0, 0)
    return BoardView(batch=chosen, rows=rows, runs_done=done, runs_total=total, version=version)


async def batch_progress(session: AsyncSession, batch_id: int) -> tuple[int, int]:
    done, total = (
        await session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(leaderboard.c.runs_done), 0),
                sa.func.coalesce(sa.func.sum(leaderboard.c.runs_total), 0),
            ).where(leaderboard.c.batch_id == batch_id)
        )
    ).one()
    return int(done), int(total)


def sparkline(scores: list[float | None], width: int = 240, height: int = 48) -> str:
    """Points for an SVG polyline of scores in order (None skipped)."""
    values = [s for s in scores if s is not None]
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 4 - (v - low) / span * (height - 8):.1f}"
        for i, v in enumerate(values)
    )
