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
from portal.core.config import Settings
from portal.core.time import utcnow
from portal.evaluation.models import BatchKind, BatchSubmission, EvaluationBatch
from portal.llm.budgets import Budgets, Refusal
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
    # Refused calls by the budget that refused them (every Refusal kind, 0 when none).
    refused_by: dict[str, int] = field(default_factory=dict)

    @property
    def exceeded_rate(self) -> float:
        """Refused over all calls: how often the team ran into its limits."""
        return self.refused / self.calls if self.calls else 0.0

    @property
    def exceeded_rate_by(self) -> dict[str, float]:
        """Per budget: calls it refused over all calls."""
        return {
            kind: (count / self.calls if self.calls else 0.0)
            for kind, count in self.refused_by.items()
        }


@dataclass
class TeamUsage:
    team_id: int
    team_name: str
    totals: Totals
    budgets: Budgets

    @property
    def requests_per_minute(self) -> int:
        return self.budgets.requests_per_minute


@dataclass
class UsageReport:
    window: Window
    since: datetime
    until: datetime
    step_minutes: int
    totals: Totals
    buckets: list[Bucket] = field(default_factory=list)
    teams: list[TeamUsage] = field(default_factory=list)
    # The team's own budgets (overrides or defaults); None for the all-teams report.
    budgets: Budgets | None = None

    @property
    def requests_per_minute(self) -> int | None:
        return self.budgets.requests_per_minute if self.budgets else None


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
        *(
            sa.func.count().filter(col(LlmUsageLog.refusal) == kind.value).label(f"refused_{kind}")
            for kind in Refusal
        ),
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
        refused_by={kind.value: getattr(row, f"refused_{kind}") for kind in Refusal},
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
    settings: Settings,
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
        result.teams = await _per_team(session, in_window, settings)
    else:
        overrides = await limit_overrides(session, [team_id])
        result.budgets = budgets_in_force(overrides.get(team_id), settings)
    return result


async def _per_team(
    session: AsyncSession, in_window: list[sa.ColumnElement[bool]], settings: Settings
) -> list[TeamUsage]:
    rows = list(
        await session.execute(
            sa.select(col(Team.id), col(Team.name), *totals_columns())
            .join(LlmUsageLog, col(LlmUsageLog.team_id) == Team.id)
            .where(*in_window)
            .group_by(col(Team.id), col(Team.name))
            .order_by(sa.text("calls DESC"), col(Team.name))
        )
    )
    overrides = await limit_overrides(session, [row.id for row in rows])
    return [
        TeamUsage(row.id, row.name, _totals(row), budgets_in_force(overrides.get(row.id), settings))
        for row in rows
    ]


# A team's budgets, in the order pages and the API show them.
BUDGET_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "tokens_per_day",
    "max_parallel",
    "models",
)


@dataclass(frozen=True)
class LimitOverride:
    """What an admin set for one team; None: the PORTAL_LLM_* default applies."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_parallel: int | None = None
    models: tuple[str, ...] | None = None

    @property
    def overridden(self) -> list[str]:
        return [name for name in BUDGET_FIELDS if getattr(self, name) is not None]

    @classmethod
    def read_from(cls, source: Any) -> LimitOverride:
        """The five budgets of anything that has them as attributes (a stored row, an
        API body)."""
        values = {name: getattr(source, name) for name in BUDGET_FIELDS}
        if values["models"] is not None:
            values["models"] = tuple(values["models"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in BUDGET_FIELDS}
        values["models"] = list(self.models) if self.models is not None else None
        return values


def default_budgets(settings: Settings) -> Budgets:
    return Budgets(
        requests_per_minute=settings.llm_rpm,
        tokens_per_minute=settings.llm_tokens_per_minute,
        tokens_per_day=settings.llm_tokens_per_day,
        max_parallel=settings.llm_max_parallel,
        models=settings.llm_model_allowlist,
    )


def budgets_in_force(override: LimitOverride | None, settings: Settings) -> Budgets:
    """The team's overrides over the defaults: what the gateway holds it to."""
    defaults = default_budgets(settings)
    if override is None:
        return defaults
    return Budgets(
        **{
            name: value
            if (value := getattr(override, name)) is not None
            else getattr(defaults, name)
            for name in BUDGET_FIELDS
        }
    )


async def limit_overrides(session: AsyncSession, team_ids: list[int]) -> dict[int, LimitOverride]:
    rows = await session.scalars(
        sa.select(LlmUsageRateLimit).where(col(LlmUsageRateLimit.team_id).in_(team_ids))
    )
    return {row.team_id: LimitOverride.read_from(row) for row in rows}


async def set_limits(
    session: AsyncSession, team: Team, limits: LimitOverride, *, actor: Team
) -> None:
    """Replace the team's overrides (each None: back to the default). Audited.

    Takes effect on the team's next call, in every portal process, within
    PORTAL_LLM_AUTH_CACHE_SECONDS: the gateway reads the overrides with the caller.
    """
    # The team's row is the lock: with no override row yet there is nothing else to
    # lock, and two changes at once would both insert one (the second a 500) and both
    # audit the same "previous".
    await session.execute(sa.select(col(Team.id)).where(col(Team.id) == team.id).with_for_update())
    existing = await session.get(LlmUsageRateLimit, team.id)
    previous = LimitOverride.read_from(existing) if existing is not None else LimitOverride()
    if previous == limits:
        return
    if not limits.overridden:
        await session.delete(existing)
    else:
        row = existing or LlmUsageRateLimit(team_id=team.id)
        for name, value in limits.as_dict().items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        session.add(row)
    await session.flush()
    await audit.record(
        session,
        "llm.rate_limit",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"previous": previous.as_dict(), "limits": limits.as_dict()},
    )


@dataclass(frozen=True)
class LimitChange:
    """One audited change of a team's budgets: each changed budget's value before and
    after (None: the default)."""

    at: datetime | None
    actor_name: str | None  # None: the actor's team is gone, or the CLI
    changes: dict[str, tuple[Any, Any]]


async def limit_changes(session: AsyncSession, team_id: int, *, count: int) -> list[LimitChange]:
    """The team's latest `count` budget changes, newest first, from the audit log."""
    statement = audit.entries_statement(
        audit.AuditFilter(action="llm.rate_limit", target=("team", str(team_id)))
    ).limit(count)
    changes = []
    for entry, actor_name in await session.execute(statement):
        before, after = entry.details.get("previous", {}), entry.details.get("limits", {})
        changes.append(
            LimitChange(
                at=entry.created_at,
                actor_name=actor_name,
                changes={
                    name: (before.get(name), after.get(name))
                    for name in BUDGET_FIELDS
                    if before.get(name) != after.get(name)
                },
            )
        )
    return changes
