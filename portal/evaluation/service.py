"""Batch rules for admins: create, start, cancel, re-run failed. Takes a session, never
commits; run messages are sent only after the request's transaction commits."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from dramatiq import Broker
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from portal.audit import service as audit
from portal.core.db import after_commit
from portal.core.errors import Conflict, NotFound
from portal.core.i18n import gettext as _
from portal.core.pagination import Page, PageParams, first_column, paginate
from portal.core.templating import status_name
from portal.core.time import utcnow
from portal.evaluation.models import (
    BatchKind,
    BatchStatus,
    BatchSubmission,
    EvaluationBatch,
    EvaluationRun,
    RunStatus,
)
from portal.evaluation.queue import enqueue_leaderboard_refresh, enqueue_runs
from portal.evaluation.runs import ACTIVE, COST_FIELDS, FAILED
from portal.evaluation.schemas import BatchCreate, BatchProgress, BatchTotals, RunView
from portal.evaluation.words import kind_word
from portal.submissions.models import Submission
from portal.teams.models import Role, Team


async def get(session: AsyncSession, batch_id: int, *, lock: bool = False) -> EvaluationBatch:
    statement = sa.select(EvaluationBatch).where(col(EvaluationBatch.id) == batch_id)
    if lock:
        statement = statement.with_for_update()
    batch = await session.scalar(statement)
    if batch is None:
        raise NotFound(_("No evaluation batch #%(id)s.", id=batch_id))
    return batch


async def create(
    session: AsyncSession, data: BatchCreate, *, actor: Team, kit: str
) -> EvaluationBatch:
    batch = EvaluationBatch(
        name=data.name,
        seeds=data.seeds,
        selection=data.selection,
        kit=kit,
        created_by_team_id=actor.id,
    )
    session.add(batch)
    await session.flush()
    await session.refresh(batch)
    await audit.record(
        session,
        "batch.create",
        actor=actor,
        target_type="batch",
        target_id=batch.id,
        details={"name": batch.name, "seeds": batch.seeds, "selection": batch.selection},
    )
    return batch


async def _chosen_submissions(session: AsyncSession, selection: str) -> list[Submission]:
    active_participants = sa.select(col(Team.id)).where(
        col(Team.is_active), col(Team.role) == Role.participant
    )
    if selection == "unevaluated":
        # Not yet in an admin batch: the competition scores every upload by itself.
        evaluated = sa.select(col(BatchSubmission.submission_id)).join(
            EvaluationBatch,
            sa.and_(
                col(EvaluationBatch.id) == BatchSubmission.batch_id,
                col(EvaluationBatch.kind) == BatchKind.adhoc,
            ),
        )
        result = await session.scalars(
            sa.select(Submission)
            .where(
                col(Submission.team_id).in_(active_participants),
                col(Submission.id).not_in(evaluated),
            )
            .order_by(col(Submission.team_id), col(Submission.id))
        )
        return list(result)
    # Every team's final picks; a team that picked none is judged on its latest upload.
    picks = list(
        await session.scalars(
            sa.select(Submission)
            .where(
                col(Submission.team_id).in_(active_participants),
                col(Submission.is_final),
            )
            .order_by(col(Submission.team_id), col(Submission.id))
        )
    )
    picked_teams = {submission.team_id for submission in picks}
    latest = await session.scalars(
        sa.select(Submission)
        .ext(distinct_on(col(Submission.team_id)))
        .where(col(Submission.team_id).in_(active_participants))
        .order_by(
            col(Submission.team_id),
            col(Submission.created_at).desc(),
            col(Submission.id).desc(),
        )
    )
    return picks + [s for s in latest if s.team_id not in picked_teams]


def round_robin(items_by_team: dict[int, list]) -> list:
    """Interleave teams: A1 B1 C1 A2 B2 ... so no team's many runs hold others back."""
    queues = [list(items) for _team, items in sorted(items_by_team.items())]
    ordered = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def _enqueue_after_commit(session: AsyncSession, broker: Broker, run_ids: list[int]) -> None:
    """Send the runs, and a leaderboard refresh (the board shows runs done / total)."""

    async def send() -> None:
        await run_in_threadpool(enqueue_runs, broker, run_ids)
        await run_in_threadpool(enqueue_leaderboard_refresh, broker, 0)

    after_commit(session, send)


async def start(
    session: AsyncSession, batch_id: int, *, actor: Team, broker: Broker
) -> EvaluationBatch:
    batch = await get(session, batch_id, lock=True)
    if batch.status != BatchStatus.draft:
        raise Conflict(
            _(
                "Batch #%(id)s is %(status)s; only a draft batch can start.",
                id=batch.id,
                status=status_name(batch.status),
            ),
            code="batch_not_draft",
        )
    submissions = await _chosen_submissions(session, batch.selection)
    if not submissions:
        raise Conflict(
            _(
                "There is nothing to evaluate: no team has a submission that matches "
                "this batch's selection."
            ),
            code="nothing_to_evaluate",
        )
    entries = [
        BatchSubmission(batch_id=batch.id, submission_id=submission.id, team_id=submission.team_id)
        for submission in submissions
    ]
    session.add_all(entries)
    await session.flush()  # one multi-row INSERT ... RETURNING gives every entry its id
    pairs_by_team: dict[int, list] = defaultdict(list)
    for entry in entries:
        for seed in batch.seeds:
            pairs_by_team[entry.team_id].append((entry.id, seed))
    runs = [
        EvaluationRun(
            batch_id=batch.id, batch_submission_id=entry_id, seed=seed, queue_position=position
        )
        for position, (entry_id, seed) in enumerate(round_robin(pairs_by_team))
    ]
    session.add_all(runs)
    batch.status = BatchStatus.running
    batch.started_at = utcnow()
    await session.flush()
    _enqueue_after_commit(session, broker, [run.id for run in runs])
    await audit.record(
        session,
        "batch.start",
        actor=actor,
        target_type="batch",
        target_id=batch.id,
        details={"submissions": len(submissions), "runs": len(runs)},
    )
    return batch


async def stop_runs(
    session: AsyncSession,
    batch: EvaluationBatch,
    *,
    reason: str,
    status: BatchStatus = BatchStatus.finished,
) -> int:
    """End a batch now: its queued and running runs are cancelled with `reason` (a
    running run's worker sees it at its next heartbeat and kills the container).
    The caller holds the batch's row lock. Returns how many runs were cancelled."""
    now = utcnow()
    cancelled = await session.execute(
        sa.update(EvaluationRun)
        .where(
            col(EvaluationRun.batch_id) == batch.id,
            col(EvaluationRun.status).in_(ACTIVE),
        )
        .values(status=RunStatus.cancelled, reason=reason, finished_at=now, heartbeat_at=None)
    )
    await session.execute(
        sa.update(BatchSubmission)
        .where(
            col(BatchSubmission.batch_id) == batch.id,
            col(BatchSubmission.status).in_(ACTIVE),
        )
        .values(status=RunStatus.cancelled, finished_at=now)
    )
    batch.status = status
    batch.finished_at = now
    await session.flush()
    return cancelled.rowcount  # type: ignore[attr-defined]  # DML gives a CursorResult


async def cancel(
    session: AsyncSession, batch_id: int, *, actor: Team, broker: Broker
) -> EvaluationBatch:
    batch = await get(session, batch_id, lock=True)
    if batch.kind != BatchKind.adhoc:
        raise Conflict(
            _(
                "Batch #%(id)s is the competition's %(kind)s evaluation; it follows the "
                "competition (change its seeds on the competition page) and cannot be "
                "cancelled.",
                id=batch.id,
                kind=kind_word(batch.kind),
            ),
            code="competition_batch",
        )
    if batch.status not in (BatchStatus.draft, BatchStatus.running):
        raise Conflict(
            _(
                "Batch #%(id)s is already %(status)s.",
                id=batch.id,
                status=status_name(batch.status),
            ),
            code="batch_over",
        )
    cancelled = await stop_runs(
        session, batch, reason="Cancelled by an organizer.", status=BatchStatus.cancelled
    )
    _enqueue_after_commit(session, broker, [])
    await audit.record(
        session,
        "batch.cancel",
        actor=actor,
        target_type="batch",
        target_id=batch.id,
        details={"runs_cancelled": cancelled},
    )
    return batch


async def rerun_failed(
    session: AsyncSession, batch_id: int, *, actor: Team, broker: Broker
) -> EvaluationBatch:
    """Queue the failed runs again, in place: the same rows, so never a duplicate."""
    batch = await get(session, batch_id, lock=True)
    if batch.status == BatchStatus.draft:
        raise Conflict(_("Start the batch first."), code="batch_not_started")
    result = await session.execute(
        sa.update(EvaluationRun)
        .where(
            col(EvaluationRun.batch_id) == batch.id,
            col(EvaluationRun.status).in_(FAILED),
        )
        .values(
            status=RunStatus.queued,
            attempts=0,
            score=None,
            reason=None,
            exit_code=None,
            duration_ms=None,
            log="",
            **dict.fromkeys(COST_FIELDS),
            limits={},
            worker_id=None,
            heartbeat_at=None,
            started_at=None,
            finished_at=None,
            queued_at=utcnow(),
            details={},
        )
        .returning(
            col(EvaluationRun.id),
            col(EvaluationRun.batch_submission_id),
        )
    )
    rows = result.all()
    if not rows:
        raise Conflict(
            _("Batch #%(id)s has no failed runs to re-run.", id=batch.id), code="nothing_failed"
        )
    await session.execute(
        sa.update(BatchSubmission)
        .where(col(BatchSubmission.id).in_({row.batch_submission_id for row in rows}))
        .values(
            status=RunStatus.queued,
            mean_score=None,
            reason=None,
            seed_results={},
            finished_at=None,
        )
    )
    batch.status = BatchStatus.running
    batch.finished_at = None
    await session.flush()
    run_ids = [row.id for row in sorted(rows, key=lambda r: r.id)]
    _enqueue_after_commit(session, broker, run_ids)
    await audit.record(
        session,
        "batch.rerun_failed",
        actor=actor,
        target_type="batch",
        target_id=batch.id,
        details={"runs": len(run_ids)},
    )
    return batch


async def progress(session: AsyncSession, batch_id: int) -> BatchProgress:
    return (await progress_of(session, [batch_id]))[batch_id]


async def progress_of(session: AsyncSession, batch_ids: list[int]) -> dict[int, BatchProgress]:
    """Runs done / total per batch, for a whole page of batches in one grouped query."""
    rows = await session.execute(
        sa.select(
            col(EvaluationRun.batch_id),
            col(EvaluationRun.status),
            sa.func.count(),
        )
        .where(col(EvaluationRun.batch_id).in_(batch_ids))
        .group_by(col(EvaluationRun.batch_id), col(EvaluationRun.status))
    )
    counts: dict[int, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
    for batch_id, status, count in rows:
        counts[batch_id][status] = count
    return {batch_id: _progress(batch_counts) for batch_id, batch_counts in counts.items()}


def _progress(counts: dict[str, int]) -> BatchProgress:
    total = sum(counts.values())
    done = total - sum(counts.get(status, 0) for status in ACTIVE)
    return BatchProgress(
        total=total,
        done=done,
        counts=counts,
        percent=int(100 * done / total) if total else 0,
    )


async def list_batches(session: AsyncSession, page: PageParams) -> Page[EvaluationBatch]:
    statement = sa.select(EvaluationBatch).order_by(col(EvaluationBatch.id).desc())
    return await paginate(session, statement, page, first_column)


RUN_COLUMNS = (
    col(EvaluationRun.id),
    col(EvaluationRun.batch_id),
    col(EvaluationRun.seed),
    col(EvaluationRun.status),
    col(EvaluationRun.score),
    col(EvaluationRun.duration_ms),
    col(EvaluationRun.attempts),
    col(EvaluationRun.reason),
    col(EvaluationRun.exit_code),
    *(getattr(EvaluationRun, name) for name in COST_FIELDS),
    col(EvaluationRun.limits),
)


async def list_runs(
    session: AsyncSession,
    batch_id: int | None = None,
    *,
    submission_id: int | None = None,
    run_id: int | None = None,
    include_log: bool = False,
    limit: int = 500,
) -> list[RunView]:
    """Runs of a batch and/or a submission (or the one run `run_id`), in queue order.
    Logs (up to the log cap each) are loaded only when asked for: the admin's polled run
    table never shows them."""
    conditions = []
    if batch_id is not None:
        conditions.append(col(EvaluationRun.batch_id) == batch_id)
    if submission_id is not None:
        conditions.append(col(BatchSubmission.submission_id) == submission_id)
    if run_id is not None:
        conditions.append(col(EvaluationRun.id) == run_id)
    columns = [*RUN_COLUMNS, *([col(EvaluationRun.log)] if include_log else [])]
    rows = await session.execute(
        sa.select(
            *columns,
            col(BatchSubmission.submission_id),
            col(Team.id).label("team_id"),
            col(Team.name).label("team_name"),
        )
        .join(
            BatchSubmission,
            col(BatchSubmission.id) == EvaluationRun.batch_submission_id,
        )
        .join(Team, col(Team.id) == BatchSubmission.team_id)
        .where(*conditions)
        .order_by(
            col(EvaluationRun.batch_id),
            col(EvaluationRun.queue_position),
        )
        .limit(limit)
    )
    return [RunView.model_validate(row) for row in rows]


async def get_run(session: AsyncSession, run_id: int) -> RunView:
    """One run with its whole kept log (an admin's view: any batch, private included)."""
    found = await list_runs(session, run_id=run_id, include_log=True, limit=1)
    if not found:
        raise NotFound(_("No evaluation run #%(id)s.", id=run_id))
    return found[0]


async def totals(session: AsyncSession, batch_id: int) -> BatchTotals:
    """What the batch's ended runs cost together, in one aggregate query."""
    ended = col(EvaluationRun.status).not_in(ACTIVE)
    cpu = col(EvaluationRun.cpu_user_ms) + col(EvaluationRun.cpu_system_ms)
    row = (
        await session.execute(
            sa.select(
                sa.func.count().filter(ended).label("runs_ended"),
                sa.func.count(cpu).filter(ended).label("runs_measured"),
                sa.func.coalesce(sa.func.sum(cpu).filter(ended), 0).label("cpu_ms"),
                sa.func.coalesce(
                    sa.func.sum(col(EvaluationRun.duration_ms)).filter(ended), 0
                ).label("wall_ms"),
                sa.func.max(col(EvaluationRun.peak_memory_bytes))
                .filter(ended)
                .label("peak_memory_bytes"),
                sa.func.max(col(EvaluationRun.limits)["memory_mib"].as_float())
                .filter(ended)
                .label("memory_mib"),
                sa.func.coalesce(
                    sa.func.sum(col(EvaluationRun.output_bytes)).filter(ended), 0
                ).label("output_bytes"),
                sa.func.count()
                .filter(ended, col(EvaluationRun.output_truncated).is_(True))
                .label("runs_cut"),
            ).where(col(EvaluationRun.batch_id) == batch_id)
        )
    ).one()
    return BatchTotals.model_validate(row._mapping)
