"""Usage reports over the gateway's log, and the per-team limit override."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.audit import service as audit
from portal.core.time import utcnow
from portal.evaluation.models import BatchKind, BatchSubmission, EvaluationBatch
from portal.llm.models import LlmUsageLog, LlmUsageRateLimit
from portal.teams.models import Team


class Window(StrEnum):
    hour = "hour"
    day = "day"
    all = "all"


# Chart steps, in minutes: the smallest one that keeps a window within MAX_BUCKETS bars.
STEPS_MINUTES = (1, 5, 15, 60, 360, 1440, 10080)
MAX_BUCKETS = 120
WINDOW_SPAN = {Window.hour: timedelta(hours=1), Window.day: timedelta(days=1)}


@dataclass
class Bucket:
    start: datetime
    calls: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Totals:
    calls: int = 0
    allowed: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_latency_ms: float | None = None

    @property
    def exceeded_rate(self) -> float:
        """Refused over all calls: how often the team ran into its limit."""
        return self.refused / self.calls if self.calls else 0.0


@dataclass
class TeamUsage:
    team_id: int
    team_name: str
    totals: Totals
    requests_per_minute: int


@dataclass
class UsageReport:
    window: Window
    since: datetime
    until: datetime
    step_minutes: int
    totals: Totals
    buckets: list[Bucket] = field(default_factory=list)
    teams: list[TeamUsage] = field(default_factory=list)
    # The team's own limit (override or default); None for the all-teams report.
    requests_per_minute: int | None = None


def _step_for(span: timedelta) -> int:
    minutes = span.total_seconds() / 60
    return next((s for s in STEPS_MINUTES if minutes / s <= MAX_BUCKETS), STEPS_MINUTES[-1])


def _floor(moment: datetime, step_minutes: int) -> datetime:
    epoch = int(moment.timestamp()) // (step_minutes * 60) * (step_minutes * 60)
    return datetime.fromtimestamp(epoch, tz=moment.tzinfo)


def totals_columns() -> tuple[sa.Label[Any], ...]:
    """One group's calls, allowed, refused, failed, prompt_tokens, completion_tokens and
    mean latency, as every usage report and export counts them."""
    outcome = col(LlmUsageLog.outcome)
    return (
        sa.func.count().label("calls"),
        sa.func.count().filter(outcome == "allowed").label("allowed"),
        sa.func.count().filter(outcome == "refused").label("refused"),
        sa.func.count().filter(outcome == "failed").label("failed"),
        sa.func.coalesce(sa.func.sum(col(LlmUsageLog.prompt_tokens)), 0).label("prompt_tokens"),
        sa.func.coalesce(sa.func.sum(col(LlmUsageLog.completion_tokens)), 0).label(
            "completion_tokens"
        ),
        sa.func.avg(col(LlmUsageLog.latency_ms)).filter(outcome != "refused").label("latency"),
    )


def _totals(row: sa.Row[Any]) -> Totals:
    return Totals(
        calls=row.calls,
        allowed=row.allowed,
        refused=row.refused,
        failed=row.failed,
        prompt_tokens=int(row.prompt_tokens),
        completion_tokens=int(row.completion_tokens),
        mean_latency_ms=float(row.latency) if row.latency is not None else None,
    )


def _not_a_private_run() -> sa.ColumnElement[bool]:
    """A call from a team's own code or from a run of the public evaluation."""
    private_entries = (
        sa.select(col(BatchSubmission.id))
        .join(EvaluationBatch, col(EvaluationBatch.id) == BatchSubmission.batch_id)
        .where(col(EvaluationBatch.kind) != BatchKind.public)
    )
    entry = col(LlmUsageLog.batch_submission_id)
    return sa.or_(entry.is_(None), entry.not_in(private_entries))


@dataclass(frozen=True)
class WindowScope:
    """The calls a usage report (or its CSV export) counts: from `since` on, of one team
    or every team, with or without private runs' calls."""

    since: datetime
    until: datetime
    step_minutes: int
    calls: list[sa.ColumnElement[bool]]


async def window_scope(
    session: AsyncSession,
    window: Window,
    *,
    team_id: int | None,
    private_runs: bool = True,
    now: datetime | None = None,
) -> WindowScope:
    """The window's start (floored to its chart step) and the conditions on
    llm_usage_log that select its calls; `private_runs` as in `report`."""
    until = now or utcnow()
    scope = [] if team_id is None else [col(LlmUsageLog.team_id) == team_id]
    if not private_runs:
        scope.append(_not_a_private_run())
    if window == Window.all:
        first = await session.scalar(
            sa.select(sa.func.min(col(LlmUsageLog.created_at))).where(*scope)
        )
        since = first or until - timedelta(hours=1)
    else:
        since = until - WINDOW_SPAN[window]
    step = _step_for(until - since)
    since = _floor(since, step)
    return WindowScope(since, until, step, [*scope, col(LlmUsageLog.created_at) >= since])


async def report(
    session: AsyncSession,
    window: Window,
    *,
    team_id: int | None,
    default_rpm: int,
    private_runs: bool = True,
    now: datetime | None = None,
) -> UsageReport:
    """Totals and a per-step series for one team, or for every team (team_id None).

    `private_runs` False leaves out the calls made by runs outside the public
    evaluation (the final's, an admin batch's): a run on the private seeds could spend
    its seed as tokens, so a team's own report must not show them.
    """
    scope = await window_scope(session, window, team_id=team_id, private_runs=private_runs, now=now)
    since, until, step, in_window = scope.since, scope.until, scope.step_minutes, scope.calls

    totals_row = (await session.execute(sa.select(*totals_columns()).where(*in_window))).one()
    bucket_start = sa.func.date_bin(
        sa.text(f"interval '{step} minutes'"), col(LlmUsageLog.created_at), since
    ).label("bucket")
    series = await session.execute(
        sa.select(bucket_start, *totals_columns()).where(*in_window).group_by(bucket_start)
    )
    by_start = {row.bucket: row for row in series}
    buckets = []
    cursor = since
    while cursor <= until:
        row = by_start.get(cursor)
        bucket = Bucket(start=cursor)
        if row is not None:
            bucket.calls, bucket.refused, bucket.failed = row.calls, row.refused, row.failed
            bucket.prompt_tokens = int(row.prompt_tokens)
            bucket.completion_tokens = int(row.completion_tokens)
        buckets.append(bucket)
        cursor += timedelta(minutes=step)

    result = UsageReport(window, since, until, step, _totals(totals_row), buckets)
    if team_id is None:
        result.teams = await _per_team(session, in_window, default_rpm)
    else:
        overrides = await rate_limit_overrides(session, [team_id])
        result.requests_per_minute = overrides.get(team_id, default_rpm)
    return result


async def _per_team(
    session: AsyncSession, in_window: list[sa.ColumnElement[bool]], default_rpm: int
) -> list[TeamUsage]:
    rows = await session.execute(
        sa.select(
            col(Team.id),
            col(Team.name),
            col(LlmUsageRateLimit.requests_per_minute).label("override"),
            *totals_columns(),
        )
        .join(LlmUsageLog, col(LlmUsageLog.team_id) == Team.id)
        .outerjoin(LlmUsageRateLimit, col(LlmUsageRateLimit.team_id) == Team.id)
        .where(*in_window)
        .group_by(col(Team.id), col(Team.name), col(LlmUsageRateLimit.requests_per_minute))
        .order_by(sa.text("calls DESC"), col(Team.name))
    )
    return [
        TeamUsage(
            row.id,
            row.name,
            _totals(row),
            row.override if row.override is not None else default_rpm,
        )
        for row in rows
    ]


async def rate_limit_overrides(session: AsyncSession, team_ids: list[int]) -> dict[int, int]:
    rows = await session.execute(
        sa.select(col(LlmUsageRateLimit.team_id), col(LlmUsageRateLimit.requests_per_minute)).where(
            col(LlmUsageRateLimit.team_id).in_(team_ids)
        )
    )
    return {team_id: limit for team_id, limit in rows}


async def set_rate_limit(
    session: AsyncSession, team: Team, requests_per_minute: int | None, *, actor: Team
) -> None:
    """Per-team override of PORTAL_LLM_RPM; None returns the team to the default.

    Takes effect on the team's next call, in every portal process: the gateway reads the
    override with the caller on each call.
    """
    existing = await session.get(LlmUsageRateLimit, team.id, with_for_update=True)
    previous = existing.requests_per_minute if existing else None
    if previous == requests_per_minute:
        return
    if requests_per_minute is None:
        await session.delete(existing)
    elif existing is None:
        session.add(
            LlmUsageRateLimit(
                team_id=team.id, requests_per_minute=requests_per_minute, updated_at=utcnow()
            )
        )
    else:
        existing.requests_per_minute = requests_per_minute
        existing.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        "llm.rate_limit",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"previous": previous, "requests_per_minute": requests_per_minute},
    )
