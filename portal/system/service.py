"""The System page's figures: is the queue draining, are workers alive, is anything refused.

Every query reads an index made for it (migration e4b7c2d9a0f3) or a handful of rows,
so the page, polled every few seconds, stays cheap with hundreds of thousands of runs
and gateway calls: queued runs from a partial index, finished runs and failures from
(status, finished_at), the gateway's last hour from a BRIN on its time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.audit.models import AuditLog
from portal.core.i18n import gettext as _
from portal.evaluation import workers as worker_registry
from portal.evaluation.models import (
    BatchKind,
    BatchSubmission,
    EvaluationBatch,
    EvaluationRun,
    RunStatus,
)
from portal.evaluation.runs import FAILED, UNFINISHED_BY_KIND
from portal.llm.budgets import Refusal
from portal.llm.models import LlmUsageLog
from portal.submissions.models import Submission
from portal.system.schemas import (
    Failure,
    FinishedRuns,
    FinishedStep,
    GatewayRefusals,
    GatewayStep,
    Inventory,
    QueuedRuns,
    QueueFigures,
    Refusals,
    RunNow,
    SystemReport,
    UploadRefusals,
    WorkerPublic,
)
from portal.teams.models import Role, Team

WINDOW_MINUTES = 60
# Runs that did work, in the order the chart stacks them; cancelled runs did none.
FINISHED = (RunStatus.scored, *FAILED)
RECENT_FAILURES = 8
# A worker runs a few threads; more running runs than this means something is badly off,
# and the page still lists only this many.
RUNNING_SHOWN = 200
UPLOAD_REFUSED = "submission.upload_refused"


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _minutes(since: datetime) -> list[datetime]:
    return [since + timedelta(minutes=n) for n in range(WINDOW_MINUTES)]


async def queue(session: AsyncSession, now: datetime) -> QueueFigures:
    by_kind: dict[str, int] = {}
    oldest: datetime | None = None
    running = 0
    for kind, status, count, first in await session.execute(UNFINISHED_BY_KIND):
        if status == RunStatus.running:
            running += count
            continue
        by_kind[kind] = count
        oldest = first if oldest is None or (first is not None and first < oldest) else oldest
    waiting = QueuedRuns(
        public=by_kind.get(BatchKind.public, 0),
        final=by_kind.get(BatchKind.final, 0),
        adhoc=by_kind.get(BatchKind.adhoc, 0),
    )
    return QueueFigures(
        queued=waiting,
        queued_total=waiting.total,
        running=running,
        oldest_queued_at=oldest,
        oldest_queued_seconds=max((now - oldest).total_seconds(), 0) if oldest else None,
    )


def _run_rows() -> Any:  # a Select of (run_id, batch, team, ...) rows
    """A run with what a reader recognises it by: its batch and its team."""
    return (
        sa.select(
            col(EvaluationRun.id).label("run_id"),
            col(EvaluationRun.batch_id),
            col(EvaluationBatch.name).label("batch_name"),
            col(EvaluationBatch.kind).label("batch_kind"),
            col(Team.name).label("team_name"),
            col(BatchSubmission.submission_id),
            col(EvaluationRun.seed),
            col(EvaluationRun.status),
            col(EvaluationRun.reason),
            col(EvaluationRun.worker_id),
            col(EvaluationRun.started_at),
            col(EvaluationRun.heartbeat_at),
            col(EvaluationRun.finished_at),
        )
        .join(EvaluationBatch, col(EvaluationBatch.id) == EvaluationRun.batch_id)
        .join(BatchSubmission, col(BatchSubmission.id) == EvaluationRun.batch_submission_id)
        .join(Team, col(Team.id) == BatchSubmission.team_id)
    )


async def running_runs(session: AsyncSession) -> list[RunNow]:
    rows = await session.execute(
        _run_rows()
        .where(col(EvaluationRun.status) == RunStatus.running)
        .order_by(col(EvaluationRun.started_at), col(EvaluationRun.id))
        .limit(RUNNING_SHOWN)
    )
    return [RunNow.model_validate(row, from_attributes=True) for row in rows]


async def recent_failures(session: AsyncSession) -> list[Failure]:
    # One short backward walk of (status, finished_at) per status, then the newest of
    # those: a single ORDER BY over `status IN (...)` would sort every failure ever.
    latest = sa.union_all(
        *(
            sa.select(col(EvaluationRun.id), col(EvaluationRun.finished_at))
            .where(col(EvaluationRun.status) == status, col(EvaluationRun.finished_at).is_not(None))
            .order_by(col(EvaluationRun.finished_at).desc())
            .limit(RECENT_FAILURES)
            for status in FAILED
        )
    ).subquery()
    rows = await session.execute(
        _run_rows()
        .join(latest, latest.c.id == EvaluationRun.id)
        .order_by(latest.c.finished_at.desc(), latest.c.id.desc())
        .limit(RECENT_FAILURES)
    )
    return [Failure.model_validate(row, from_attributes=True) for row in rows]


async def finished_runs(session: AsyncSession, now: datetime) -> FinishedRuns:
    since = _minute(now) - timedelta(minutes=WINDOW_MINUTES - 1)
    minute = sa.func.date_bin(sa.text("interval '1 minute'"), col(EvaluationRun.finished_at), since)
    rows = await session.execute(
        sa.select(minute.label("minute"), col(EvaluationRun.status), sa.func.count())
        .where(
            col(EvaluationRun.status).in_(FINISHED),
            col(EvaluationRun.finished_at) >= since,
            col(EvaluationRun.finished_at) < since + timedelta(minutes=WINDOW_MINUTES),
        )
        .group_by(sa.text("minute"), col(EvaluationRun.status))
    )
    counts: dict[datetime, dict[str, int]] = {}
    for start, status, count in rows:
        counts.setdefault(start, {})[status] = count
    totals = {status.value: 0 for status in FINISHED}
    for by_status in counts.values():
        for status, count in by_status.items():
            totals[status] += count
    return FinishedRuns(
        since=since,
        step_minutes=1,
        totals=totals,
        series=[
            FinishedStep(start=start, counts=counts.get(start, {})) for start in _minutes(since)
        ],
    )


async def refusals(session: AsyncSession, now: datetime) -> Refusals:
    since = _minute(now) - timedelta(minutes=WINDOW_MINUTES - 1)
    created = col(LlmUsageLog.created_at)
    minute = sa.func.date_bin(sa.text("interval '1 minute'"), created, since)
    rows = await session.execute(
        sa.select(
            minute.label("minute"),
            sa.func.count(),
            sa.func.count().filter(col(LlmUsageLog.outcome) == "refused"),
        )
        .where(created >= since, created < since + timedelta(minutes=WINDOW_MINUTES))
        .group_by(sa.text("minute"))
    )
    by_minute = {start: (calls, refused) for start, calls, refused in rows}
    series = [
        GatewayStep(
            start=start,
            calls=by_minute.get(start, (0, 0))[0],
            refused=by_minute.get(start, (0, 0))[1],
        )
        for start in _minutes(since)
    ]
    calls = sum(step.calls for step in series)
    refused = sum(step.refused for step in series)
    refusal = col(LlmUsageLog.refusal)
    kinds = await session.execute(
        sa.select(refusal, sa.func.count())
        .where(
            created >= since,
            created < since + timedelta(minutes=WINDOW_MINUTES),
            col(LlmUsageLog.outcome) == "refused",
        )
        .group_by(refusal)
    )
    refused_by = dict.fromkeys((kind.value for kind in Refusal), 0)
    for kind, count in kinds:
        refused_by[kind or "requests"] += count  # unnamed: from before budgets had kinds

    # The error code each refusal was answered with (record_refusal writes it).
    reason = sa.func.coalesce(col(AuditLog.details)["reason"].astext, "unknown")
    uploads = await session.execute(
        sa.select(reason.label("refusal_reason"), sa.func.count())
        .where(col(AuditLog.action) == UPLOAD_REFUSED, col(AuditLog.created_at) >= since)
        .group_by(sa.text("refusal_reason"))
        .order_by(sa.func.count().desc(), sa.text("refusal_reason"))
    )
    by_reason = {code: count for code, count in uploads}
    return Refusals(
        since=since,
        llm=GatewayRefusals(
            calls=calls,
            refused=refused,
            exceeded_rate=refused / calls if calls else 0.0,
            refused_last_minute=series[-1].refused,
            refused_by=refused_by,
            series=series,
        ),
        uploads=UploadRefusals(refused=sum(by_reason.values()), by_reason=by_reason),
    )


async def inventory(session: AsyncSession) -> Inventory:
    def count(table: Any, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()

    row = (
        await session.execute(
            sa.select(
                count(Team, col(Team.role) == Role.participant).label("participants"),
                count(Team, col(Team.role) == Role.admin).label("admins"),
                count(Submission).label("submissions"),
                sa.select(sa.func.coalesce(sa.func.sum(col(Submission.size_bytes)), 0))
                .scalar_subquery()
                .label("submission_bytes"),
                count(EvaluationBatch).label("batches"),
                count(EvaluationRun).label("runs"),
                sa.func.pg_database_size(sa.func.current_database()).label("database_bytes"),
            )
        )
    ).one()
    return Inventory.model_validate(row, from_attributes=True)


async def read_workers(
    redis: Redis, now: datetime
) -> tuple[list[worker_registry.WorkerBeat], str | None]:
    """The workers' beats, or why they could not be read (the key holds something else)."""
    try:
        return await worker_registry.known_workers_async(redis, now), None
    except ResponseError as exc:
        raw_kind = await redis.type(worker_registry.WORKERS_KEY)
        kind = raw_kind.decode(errors="replace") if isinstance(raw_kind, bytes) else raw_kind
        return [], _(
            "Redis key %(key)s holds a %(kind)s, not the workers' hash (%(error)s); "
            "something else wrote it. Delete the key: workers rewrite it at their next beat.",
            key=repr(worker_registry.WORKERS_KEY),
            kind=kind,
            error=exc,
        )


async def report(
    session: AsyncSession,
    redis: Redis,
    *,
    now: datetime,
    stale_after_seconds: float,
    with_inventory: bool = True,
) -> SystemReport:
    beats, workers_problem = await read_workers(redis, now)
    running = await running_runs(session)
    held: dict[str, list[RunNow]] = {}
    for run in running:
        held.setdefault(run.worker_id or "", []).append(run)
    workers = [
        WorkerPublic(
            worker_id=beat.worker_id,
            host=beat.host,
            pid=beat.pid,
            threads=beat.threads,
            runner=beat.runner,
            started_at=beat.started_at,
            beat_at=beat.beat_at,
            seconds_since_beat=(now - beat.beat_at).total_seconds(),
            alive=beat.is_alive(now, stale_after_seconds),
            running=held.get(beat.worker_id, []),
        )
        for beat in beats
    ]
    alive = {worker.worker_id for worker in workers if worker.alive}
    return SystemReport(
        now=now,
        stale_after_seconds=stale_after_seconds,
        queue=await queue(session, now),
        workers=workers,
        workers_alive=len(alive),
        workers_problem=workers_problem,
        unattended=[run for run in running if run.worker_id not in alive],
        finished=await finished_runs(session, now),
        failures=await recent_failures(session),
        refusals=await refusals(session, now),
        inventory=await inventory(session) if with_inventory else None,
    )
