"""The life of one run, as the worker sees it (sync SQLAlchemy: actors are threads).

Every transition is one conditional UPDATE, so a run is claimed once per attempt, a
result is written once, and a cancelled or taken-over run cannot be overwritten by a
worker that comes back late.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from portal.core.text import safe_json, safe_text, shorten
from portal.core.time import utcnow
from portal.evaluation.models import (
    BatchKind,
    BatchStatus,
    BatchSubmission,
    EvaluationBatch,
    EvaluationRun,
    RunStatus,
)
from portal.submissions.models import Submission

ACTIVE = (RunStatus.queued, RunStatus.running)
FAILED = (
    RunStatus.failed,
    RunStatus.timeout,
    RunStatus.memory_limit,
    RunStatus.disk_limit,
    RunStatus.invalid_answer,
)
# A reason is a few sentences and the last log lines, not the whole log.
REASON_LIMIT = 4000


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as `record` writes it.

    Defined here, not beside `worker.judge` that produces most of them, because it is
    the shape of the row the portal stores: the worker imports the portal's rules,
    never the other way round, so the portal runs without the sandbox or the kits.
    """

    status: str
    reason: str | None
    score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCost:
    """What a run cost, as measured outside the program (the evaluation_run columns of
    the same names); None where it could not be measured."""

    cpu_user_ms: int | None = None
    cpu_system_ms: int | None = None
    peak_memory_bytes: int | None = None
    exit_signal: int | None = None
    output_bytes: int | None = None
    output_truncated: bool | None = None
    limits: dict[str, Any] = field(default_factory=dict)


# The measured figures of a run (its `limits` aside): columns of evaluation_run, and the
# per-seed summary `settle` keeps beside each seed's score.
COST_FIELDS = tuple(f.name for f in dataclasses.fields(RunCost) if f.name != "limits")


# Unfinished runs counted by batch kind and status, with the oldest queued one's time:
# what the System page and /metrics both show of the queue.
UNFINISHED_BY_KIND = (
    sa.select(
        col(EvaluationBatch.kind),
        col(EvaluationRun.status),
        sa.func.count(),
        sa.func.min(col(EvaluationRun.queued_at)),
    )
    .join(EvaluationBatch, col(EvaluationBatch.id) == EvaluationRun.batch_id)
    .where(col(EvaluationRun.status).in_(ACTIVE))
    .group_by(col(EvaluationBatch.kind), col(EvaluationRun.status))
)


@dataclass(frozen=True)
class ClaimedRun:
    id: int
    seed: int
    attempt: int
    batch_id: int
    batch_submission_id: int
    storage_key: str
    team_id: int


def claim(session: Session, run_id: int, worker_id: str, max_attempts: int) -> ClaimedRun | None:
    """Take the next queued run of `run_id`'s batch, if that batch is running; None when
    it has nothing left to take.

    A message is a ticket for one run of its batch, not for that very run: the worker
    takes the batch's lowest queue position, so teams stay interleaved however their
    runs were sent (a team's fifth upload, queued later at a later position, still
    waits behind every other team's first). A batch holds as many tickets as queued
    runs, and a spare ticket finds nothing and is dropped.
    """
    now = utcnow()
    batch_id = session.scalar(
        sa.select(col(EvaluationRun.batch_id))
        .join(EvaluationBatch, col(EvaluationBatch.id) == EvaluationRun.batch_id)
        .where(
            col(EvaluationRun.id) == run_id,
            col(EvaluationBatch.status) == BatchStatus.running,
        )
    )
    if batch_id is None:
        return None
    # SKIP LOCKED: workers claiming at the same moment take different runs, no waiting.
    next_run = (
        sa.select(col(EvaluationRun.id))
        .where(
            col(EvaluationRun.batch_id) == batch_id,
            col(EvaluationRun.status) == RunStatus.queued,
            col(EvaluationRun.attempts) < max_attempts,
        )
        .order_by(col(EvaluationRun.queue_position), col(EvaluationRun.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = session.execute(
        sa.update(EvaluationRun)
        .where(
            col(EvaluationRun.id) == next_run,
            col(EvaluationRun.status) == RunStatus.queued,
        )
        .values(
            status=RunStatus.running,
            attempts=col(EvaluationRun.attempts) + 1,
            worker_id=worker_id,
            heartbeat_at=now,
            started_at=now,
        )
        .returning(
            col(EvaluationRun.id),
            col(EvaluationRun.seed),
            col(EvaluationRun.attempts),
            col(EvaluationRun.batch_id),
            col(EvaluationRun.batch_submission_id),
        )
    ).first()
    if row is None:
        return None
    submission = session.execute(
        sa.select(col(Submission.storage_key), col(Submission.team_id))
        .join(BatchSubmission, col(BatchSubmission.submission_id) == Submission.id)
        .where(col(BatchSubmission.id) == row.batch_submission_id)
    ).one()
    session.execute(
        sa.update(BatchSubmission)
        .where(
            col(BatchSubmission.id) == row.batch_submission_id,
            col(BatchSubmission.status) == RunStatus.queued,
        )
        .values(status=RunStatus.running, started_at=now)
    )
    return ClaimedRun(
        row.id,
        row.seed,
        row.attempts,
        row.batch_id,
        row.batch_submission_id,
        submission.storage_key,
        submission.team_id,
    )


def _mine(run: ClaimedRun, worker_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        col(EvaluationRun.id) == run.id,
        col(EvaluationRun.status) == RunStatus.running,
        col(EvaluationRun.worker_id) == worker_id,
        col(EvaluationRun.attempts) == run.attempt,
    )


def heartbeat(session: Session, run: ClaimedRun, worker_id: str) -> bool:
    """Refresh the heartbeat; False when the run is no longer ours (cancelled, taken over)."""
    result = session.execute(
        sa.update(EvaluationRun).where(*_mine(run, worker_id)).values(heartbeat_at=utcnow())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]  # DML gives a CursorResult


def record(
    session: Session,
    run: ClaimedRun,
    worker_id: str,
    outcome: Outcome,
    *,
    exit_code: int | None,
    duration_ms: int,
    log: str,
    failed_run_score: float,
    cost: RunCost | None = None,
) -> bool:
    """Write the result once; False if the run stopped being ours meanwhile.

    The log, the reason and the details may hold anything the submission wrote; they are
    stored made safe, so no output can make this write fail."""
    lock_batch(session, run.batch_id)
    result = session.execute(
        sa.update(EvaluationRun)
        .where(*_mine(run, worker_id))
        .values(
            status=outcome.status,
            score=outcome.score,
            reason=stored_reason(outcome.reason),
            details=safe_json(outcome.details),
            exit_code=exit_code,
            duration_ms=duration_ms,
            log=safe_text(log),
            **dataclasses.asdict(cost or RunCost()),
            finished_at=utcnow(),
            heartbeat_at=None,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # DML gives a CursorResult
        return False
    settle(session, run.batch_submission_id, run.batch_id, failed_run_score)
    return True


def _requeue_or_fail(
    session: Session,
    *,
    batch_id: int,
    batch_submission_id: int,
    attempts: int,
    max_attempts: int,
    still_ours: tuple[sa.ColumnElement[bool], ...],
    failure_reason: str,
    failed_run_score: float,
) -> bool | None:
    """Queue a run again, or fail it once its attempts ran out (then settle its batch).

    `still_ours` are the conditions under which the run may still be changed; None when
    it moved on meanwhile. True when queued again, False when failed.
    """
    lock_batch(session, batch_id)
    retry = attempts < max_attempts
    values = (
        {"status": RunStatus.queued, "worker_id": None, "heartbeat_at": None}
        if retry
        else {
            "status": RunStatus.failed,
            "finished_at": utcnow(),
            "heartbeat_at": None,
            "reason": failure_reason,
        }
    )
    changed = session.execute(sa.update(EvaluationRun).where(*still_ours).values(**values))
    if changed.rowcount != 1:  # type: ignore[attr-defined]  # DML gives a CursorResult
        return None
    if not retry:
        settle(session, batch_submission_id, batch_id, failed_run_score)
    return retry


def release_for_retry(
    session: Session, run: ClaimedRun, worker_id: str, reason: str, max_attempts: int
) -> bool:
    """An infrastructure failure: queue the run again, or fail it once attempts run out.

    Returns True when the run should be retried.
    """
    outcome = _requeue_or_fail(
        session,
        batch_id=run.batch_id,
        batch_submission_id=run.batch_submission_id,
        attempts=run.attempt,
        max_attempts=max_attempts,
        still_ours=_mine(run, worker_id),
        failure_reason=stored_reason(
            f"The evaluation infrastructure failed on {_attempts(run.attempt)}; the last time: "
            f"{reason} An organizer can re-run it once that is fixed."
        ),
        failed_run_score=0.0,
    )
    return bool(outcome)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


@overload
def stored_reason(reason: str) -> str: ...
@overload
def stored_reason(reason: None) -> None: ...
def stored_reason(reason: str | None) -> str | None:
    return None if reason is None else shorten(safe_text(reason), REASON_LIMIT)


def lock_batch(session: Session, batch_id: int) -> None:
    """Serialise result writes of one batch (and its cancel): whoever settles last sees
    every other result committed, so the batch is marked finished exactly when it is.
    Taken first, always, so the lock order is the same everywhere: batch, then runs."""
    session.execute(
        sa.select(col(EvaluationBatch.id))
        .where(col(EvaluationBatch.id) == batch_id)
        .with_for_update()
    )


def settle(
    session: Session, batch_submission_id: int, batch_id: int, failed_run_score: float
) -> None:
    """When a submission's runs have all ended, its mean; when a batch's have, the batch."""
    # Lock the batch_submission row so two runs ending together settle it once.
    session.execute(
        sa.select(col(BatchSubmission.id))
        .where(col(BatchSubmission.id) == batch_submission_id)
        .with_for_update()
    )
    runs = session.execute(
        sa.select(
            col(EvaluationRun.seed),
            col(EvaluationRun.status),
            col(EvaluationRun.score),
            col(EvaluationRun.reason),
            col(EvaluationRun.duration_ms),
            col(EvaluationRun.exit_code),
            *(getattr(EvaluationRun, name) for name in COST_FIELDS),
        )
        .where(col(EvaluationRun.batch_submission_id) == batch_submission_id)
        .order_by(col(EvaluationRun.seed))
    ).all()
    if runs and not any(run.status in ACTIVE for run in runs):
        ended = [run for run in runs if run.status != RunStatus.cancelled]
        scores = [
            run.score if run.status == RunStatus.scored else failed_run_score for run in ended
        ]
        failed = [run.status for run in ended if run.status != RunStatus.scored]
        session.execute(
            sa.update(BatchSubmission)
            .where(col(BatchSubmission.id) == batch_submission_id)
            .values(
                status=RunStatus.cancelled
                if not ended
                else (RunStatus.scored if not failed else failed[0]),
                mean_score=(sum(scores) / len(scores)) if scores else None,
                reason=None if not failed else f"{len(failed)} of {len(ended)} runs did not score",
                seed_results={
                    str(run.seed): {
                        "status": run.status,
                        "score": run.score,
                        "reason": run.reason,
                        "duration_ms": run.duration_ms,
                        "exit_code": run.exit_code,
                        **{name: getattr(run, name) for name in COST_FIELDS},
                    }
                    for run in runs
                },
                finished_at=utcnow(),
            )
        )
    remaining = session.scalar(
        sa.select(sa.func.count())
        .select_from(EvaluationRun)
        .where(col(EvaluationRun.batch_id) == batch_id, col(EvaluationRun.status).in_(ACTIVE))
    )
    if remaining == 0:
        # The competition's public batch runs as long as the competition: every upload
        # adds runs to it.
        session.execute(
            sa.update(EvaluationBatch)
            .where(
                col(EvaluationBatch.id) == batch_id,
                col(EvaluationBatch.status) == BatchStatus.running,
                col(EvaluationBatch.kind) != BatchKind.public,
            )
            .values(status=BatchStatus.finished, finished_at=utcnow())
        )


def requeue_stale(
    session: Session, stale_after_seconds: float, max_attempts: int, failed_run_score: float
) -> tuple[list[int], list[int]]:
    """Runs whose worker stopped heartbeating: queue them again or fail them.

    Returns (run ids to enqueue again, run ids given up on).
    """
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    stale = session.execute(
        sa.select(
            col(EvaluationRun.id),
            col(EvaluationRun.attempts),
            col(EvaluationRun.batch_id),
            col(EvaluationRun.batch_submission_id),
        ).where(
            col(EvaluationRun.status) == RunStatus.running, col(EvaluationRun.heartbeat_at) < cutoff
        )
    ).all()
    requeued, given_up = [], []
    for run_id, attempts, batch_id, batch_submission_id in stale:
        # Re-checked under the batch lock: the run may have reported in or ended since.
        outcome = _requeue_or_fail(
            session,
            batch_id=batch_id,
            batch_submission_id=batch_submission_id,
            attempts=attempts,
            max_attempts=max_attempts,
            still_ours=(
                col(EvaluationRun.id) == run_id,
                col(EvaluationRun.status) == RunStatus.running,
                col(EvaluationRun.heartbeat_at) < cutoff,
            ),
            failure_reason=(
                f"The worker running this was lost {attempts} times (crashed or "
                "stopped); the portal gave up. An organizer can re-run it."
            ),
            failed_run_score=failed_run_score,
        )
        if outcome is True:
            requeued.append(run_id)
        elif outcome is False:
            given_up.append(run_id)
    return requeued, given_up


def live_run_ids(session: Session, stale_after_seconds: float) -> set[int]:
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    return set(
        session.scalars(
            sa.select(col(EvaluationRun.id)).where(
                col(EvaluationRun.status) == RunStatus.running,
                col(EvaluationRun.heartbeat_at) >= cutoff,
            )
        )
    )


def public_run_ids(session: Session, run_ids: list[int]) -> set[int]:
    """Those of `run_ids` that belong to a public batch (uploads' scores, sent to their
    own queue)."""
    if not run_ids:
        return set()
    return set(
        session.scalars(
            sa.select(col(EvaluationRun.id))
            .join(EvaluationBatch, col(EvaluationBatch.id) == EvaluationRun.batch_id)
            .where(
                col(EvaluationRun.id).in_(run_ids),
                col(EvaluationBatch.kind) == BatchKind.public,
            )
        )
    )


def stalled_queued_runs(session: Session, stale_after_seconds: float) -> list[int]:
    """Queued runs of batches where nothing has moved for a while.

    Normally a queued run's message waits in Redis. If a worker died between taking a
    message and claiming its run, the run is queued with no message left: when a batch
    has queued runs, none running, and no progress for `stale_after`, send them again.
    Extra messages are harmless: a run is claimed at most once per attempt.
    """
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    last_progress = sa.func.greatest(
        sa.func.max(col(EvaluationRun.finished_at)),
        sa.func.max(col(EvaluationRun.started_at)),
        sa.func.max(col(EvaluationBatch.started_at)),
    )
    stalled_batches = (
        sa.select(col(EvaluationRun.batch_id))
        .join(EvaluationBatch, col(EvaluationBatch.id) == EvaluationRun.batch_id)
        .where(col(EvaluationBatch.status) == BatchStatus.running)
        .group_by(col(EvaluationRun.batch_id))
        .having(sa.func.count().filter(col(EvaluationRun.status) == RunStatus.running) == 0)
        .having(sa.func.count().filter(col(EvaluationRun.status) == RunStatus.queued) > 0)
        .having(last_progress < cutoff)
    )
    return list(
        session.scalars(
            sa.select(col(EvaluationRun.id))
            .where(
                col(EvaluationRun.batch_id).in_(stalled_batches),
                col(EvaluationRun.status) == RunStatus.queued,
            )
            .order_by(col(EvaluationRun.queue_position))
        )
    )
