"""The competition's rules: settings, the upload window, a public score for every
upload, the final evaluation and the reveal. Takes a session, never commits; messages
to workers and cache updates happen after the request's transaction commits."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from dramatiq import Broker
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from portal.audit import service as audit
from portal.competition.models import COMPETITION_ID, Competition, Phase
from portal.competition.phases import (
    UPLOADS_OPEN,
    CompetitionState,
    audit_phase_change,
    phase_at,
)
from portal.competition.schemas import CompetitionUpdate
from portal.core.db import after_commit
from portal.core.errors import Conflict, Forbidden
from portal.core.i18n import gettext as _
from portal.evaluation import service as evaluation
from portal.evaluation.models import (
    BatchKind,
    BatchStatus,
    BatchSubmission,
    EvaluationBatch,
    EvaluationRun,
)
from portal.evaluation.queue import enqueue_leaderboard_refresh, enqueue_runs
from portal.evaluation.runs import ACTIVE
from portal.leaderboard.refresh import LocalChanges
from portal.submissions.models import Submission
from portal.teams.models import Role, Team

CACHE_KEY = "competition:state"
# A safety net only: every change deletes the cached copy after it commits.
CACHE_SECONDS = 60


async def load(session: AsyncSession, *, lock: bool = False) -> Competition:
    statement = sa.select(Competition).where(col(Competition.id) == COMPETITION_ID)
    if lock:
        statement = statement.with_for_update()
    competition = await session.scalar(statement)
    if competition is None:  # the migration inserts it; only a hand-edited database lacks it
        raise RuntimeError("the competition row is missing; run `portal migrate`")
    return competition


async def current(session: AsyncSession, redis: Redis) -> CompetitionState:
    """The competition as every request sees it: one Redis read, the database on a miss."""
    cached = await redis.get(CACHE_KEY)
    if cached:
        return CompetitionState.model_validate_json(cached)
    state = CompetitionState.model_validate(await load(session))
    await redis.set(CACHE_KEY, state.model_dump_json(), ex=CACHE_SECONDS)
    return state


async def current_or_load(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> CompetitionState:
    """`current` for callers with no session of their own: one opens only on a miss."""
    cached = await redis.get(CACHE_KEY)
    if cached:
        return CompetitionState.model_validate_json(cached)
    async with sessionmaker() as session:
        return await current(session, redis)


def _after_change(session: AsyncSession, redis: Redis, broker: Broker) -> None:
    """Once committed: drop the cached copy and refresh the boards (which bumps their
    version, so every open page and projector picks up the change)."""

    async def publish() -> None:
        await redis.delete(CACHE_KEY)
        LocalChanges.note()
        await run_in_threadpool(enqueue_leaderboard_refresh, broker, 0)

    after_commit(session, publish)


def check_upload_window(state: CompetitionState, now: datetime) -> None:
    phase = state.phase(now)
    if phase in UPLOADS_OPEN:
        return
    if phase == Phase.before:
        raise Forbidden(
            _(
                "The competition has not started: uploads open at %(moment)s.",
                moment=state.starts_at.isoformat(),
            ),
            code="competition_not_started",
            details={"starts_at": state.starts_at.isoformat()},
        )
    raise Forbidden(
        _(
            "The competition ended at %(moment)s; no more uploads are accepted.",
            moment=state.ends_at.isoformat(),
        ),
        code="competition_ended",
        details={"ends_at": state.ends_at.isoformat()},
    )


def _team_queue_positions(runs_per_team: dict[int, int], team_id: int, count: int) -> list[int]:
    start = runs_per_team.get(team_id, 0)
    runs_per_team[team_id] = start + count
    return list(range(start, start + count))


async def _add_entries(
    session: AsyncSession, batch: EvaluationBatch, submissions: list[Submission]
) -> list[int]:
    """Put submissions into a batch with one run per seed; the new run ids.

    Queue positions interleave teams: a run's position is how many runs its team has
    ahead of it in this batch, and workers take the lowest position first, so a team
    that uploads five times waits behind everyone else's first upload, not in front.
    """
    if not submissions:
        return []
    entries = [
        BatchSubmission(batch_id=batch.id, submission_id=s.id, team_id=s.team_id)
        for s in submissions
    ]
    session.add_all(entries)
    await session.flush()
    waiting = await session.execute(
        sa.select(col(BatchSubmission.team_id), sa.func.count())
        .join(EvaluationRun, col(EvaluationRun.batch_submission_id) == BatchSubmission.id)
        .where(
            col(EvaluationRun.batch_id) == batch.id,
            col(EvaluationRun.status).in_(ACTIVE),
        )
        .group_by(col(BatchSubmission.team_id))
    )
    runs_per_team: dict[int, int] = {team_id: count for team_id, count in waiting.all()}
    runs = [
        EvaluationRun(batch_id=batch.id, batch_submission_id=entry.id, seed=seed, queue_position=p)
        for entry in entries
        for seed, p in zip(
            batch.seeds,
            _team_queue_positions(runs_per_team, entry.team_id, len(batch.seeds)),
            strict=True,
        )
    ]
    session.add_all(runs)
    await session.flush()
    return [run.id for run in sorted(runs, key=lambda r: (r.queue_position, r.id))]


def _send_after_commit(
    session: AsyncSession, broker: Broker, run_ids: list[int], *, public: bool
) -> None:
    async def send() -> None:
        await run_in_threadpool(lambda: enqueue_runs(broker, run_ids, public=public))
        await run_in_threadpool(enqueue_leaderboard_refresh, broker, 0)

    after_commit(session, send)


async def queue_public_evaluation(
    session: AsyncSession, submission: Submission, broker: Broker | None
) -> bool:
    """Queue a new upload on the public seeds; False when there are none yet.

    The competition row is read FOR SHARE: uploads do not wait for each other, but a
    change of the public seeds waits for them (and they for it), so every upload lands
    in the public batch that is current when it commits.
    """
    competition = await session.scalar(
        sa.select(Competition)
        .where(col(Competition.id) == COMPETITION_ID)
        .with_for_update(read=True)
    )
    if competition is None or competition.public_batch_id is None:
        return False
    batch = await evaluation.get(session, competition.public_batch_id)
    run_ids = await _add_entries(session, batch, [submission])
    if broker is not None:
        _send_after_commit(session, broker, run_ids, public=True)
    return True


def _of_contenders(statement: sa.Select) -> sa.Select:
    return statement.join(Team, col(Team.id) == Submission.team_id).where(
        col(Team.is_active), col(Team.role) == Role.participant
    )


async def _contenders_submissions(session: AsyncSession) -> list[Submission]:
    result = await session.scalars(
        _of_contenders(sa.select(Submission)).order_by(
            col(Submission.created_at), col(Submission.id)
        )
    )
    return list(result)


async def count_contenders_submissions(session: AsyncSession) -> int:
    """How many uploads a change of the public seeds scores again."""
    return await session.scalar(_of_contenders(sa.select(sa.func.count(col(Submission.id))))) or 0


# The competition's batches: (name, selection) by kind.
COMPETITION_BATCHES = {
    BatchKind.public: ("Public scores", "uploads"),
    BatchKind.final: ("Final evaluation", "final_picks"),
}


async def _start_batch(
    session: AsyncSession,
    kind: BatchKind,
    seeds: list[int],
    *,
    kit: str,
    actor: Team,
    now: datetime,
) -> EvaluationBatch:
    """One of the competition's batches, running from the start (no draft step)."""
    name, selection = COMPETITION_BATCHES[kind]
    batch = EvaluationBatch(
        name=name,
        seeds=seeds,
        selection=selection,
        kind=kind,
        kit=kit,
        status=BatchStatus.running,
        started_at=now,
        created_by_team_id=actor.id,
    )
    session.add(batch)
    await session.flush()
    return batch


async def _new_public_batch(
    session: AsyncSession, competition: Competition, *, actor: Team, kit: str, now: datetime
) -> tuple[EvaluationBatch | None, list[int]]:
    """Replace the public batch after the public seeds changed: every upload is scored
    again on the new seeds, so the board compares like with like."""
    if competition.public_batch_id is not None:
        old = await evaluation.get(session, competition.public_batch_id, lock=True)
        await evaluation.stop_runs(session, old, reason="The public seeds changed.")
    if not competition.public_seeds:
        competition.public_batch_id = None
        return None, []
    batch = await _start_batch(
        session, BatchKind.public, competition.public_seeds, kit=kit, actor=actor, now=now
    )
    competition.public_batch_id = batch.id
    run_ids = await _add_entries(session, batch, await _contenders_submissions(session))
    return batch, run_ids


def _changes(competition: Competition, data: CompetitionUpdate) -> dict[str, Any]:
    sent = data.model_dump(exclude_unset=True)
    return {k: v for k, v in sent.items() if getattr(competition, k) != v}


async def update(
    session: AsyncSession,
    data: CompetitionUpdate,
    *,
    actor: Team,
    redis: Redis,
    broker: Broker,
    kit: str,
    now: datetime,
) -> Competition:
    competition = await load(session, lock=True)
    changes = _changes(competition, data)
    if not changes:
        return competition
    if competition.final_started_at is not None:
        raise Conflict(
            _("The final evaluation has started; the competition's settings can no longer change."),
            code="final_started",
        )
    starts_at = changes.get("starts_at", competition.starts_at)
    ends_at = changes.get("ends_at", competition.ends_at)
    freeze_at = changes.get("freeze_at", competition.freeze_at)
    if ends_at <= starts_at:
        raise Conflict(
            _(
                "The end (%(end)s) must be after the start (%(start)s).",
                end=ends_at.isoformat(),
                start=starts_at.isoformat(),
            ),
            code="ends_before_start",
        )
    if freeze_at is not None and not starts_at <= freeze_at <= ends_at:
        raise Conflict(
            _(
                "The freeze (%(freeze)s) must be between the start and the end.",
                freeze=freeze_at.isoformat(),
            ),
            code="freeze_outside_window",
        )
    for field, value in changes.items():
        setattr(competition, field, value)
    competition.updated_at = now
    await session.flush()
    run_ids: list[int] = []
    if "public_seeds" in changes:
        _batch, run_ids = await _new_public_batch(
            session, competition, actor=actor, kit=kit, now=now
        )
        await session.flush()
    await audit.record(
        session,
        "competition.update",
        actor=actor,
        target_type="competition",
        target_id=COMPETITION_ID,
        details={
            # The private seeds' values stay out of the log: only that they changed.
            field: (f"{len(value)} seeds" if field == "private_seeds" else _plain(value))
            for field, value in changes.items()
        },
    )
    await session.run_sync(lambda sync: audit_phase_change(sync, now, actor_team_id=actor.id))
    _send_after_commit(session, broker, run_ids, public=True)
    _after_change(session, redis, broker)
    return competition


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def _final_entries(
    session: AsyncSession, public_batch_id: int | None, limit: int
) -> list[Submission]:
    """Each active participant's picks; a team that picked none is judged on its best
    public submissions up to the pick limit (Kaggle's rule), best score first, the
    earlier upload first on a tie, unscored ones last."""
    contenders = sa.select(col(Team.id)).where(
        col(Team.is_active), col(Team.role) == Role.participant
    )
    picks = list(
        await session.scalars(
            sa.select(Submission)
            .where(col(Submission.team_id).in_(contenders), col(Submission.is_final))
            .order_by(col(Submission.team_id), col(Submission.id))
        )
    )
    picked_teams = {s.team_id for s in picks}
    public_score = (
        sa.select(col(BatchSubmission.mean_score))
        .where(
            col(BatchSubmission.submission_id) == Submission.id,
            col(BatchSubmission.batch_id) == (public_batch_id or -1),
        )
        .scalar_subquery()
    )
    ranked = (
        sa.select(
            col(Submission.id),
            sa.func.row_number()
            .over(
                partition_by=col(Submission.team_id),
                order_by=(
                    public_score.desc().nulls_last(),
                    col(Submission.created_at),
                    col(Submission.id),
                ),
            )
            .label("place"),
        )
        .where(col(Submission.team_id).in_(contenders))
        .subquery()
    )
    fallback = await session.scalars(
        sa.select(Submission)
        .join(ranked, ranked.c.id == Submission.id)
        .where(ranked.c.place <= limit)
        .order_by(col(Submission.team_id), ranked.c.place)
    )
    return picks + [s for s in fallback if s.team_id not in picked_teams]


async def start_final(
    session: AsyncSession,
    *,
    actor: Team,
    redis: Redis,
    broker: Broker,
    kit: str,
    pick_limit: int,
    now: datetime,
) -> EvaluationBatch:
    competition = await load(session, lock=True)
    phase = phase_at(competition, now)
    if phase != Phase.ended:
        too_early = (
            _(
                "The competition is still open until %(moment)s. The final evaluation "
                "starts after the end.",
                moment=competition.ends_at.isoformat(),
            )
            if phase != Phase.before
            else _(
                "The competition has not started yet. The final evaluation starts after the end."
            )
        )
        raise Conflict(
            {
                Phase.final: _("The final evaluation has already started."),
                Phase.revealed: _("The final results are already revealed."),
            }.get(phase, too_early),
            code="final_not_possible",
            details={"phase": phase},
        )
    if not competition.private_seeds:
        raise Conflict(
            _("Set the private seeds first: the final evaluation runs the picks on them."),
            code="no_private_seeds",
        )
    submissions = await _final_entries(session, competition.public_batch_id, max(1, pick_limit))
    if not submissions:
        raise Conflict(
            _("There is nothing to evaluate: no team has uploaded a submission."),
            code="nothing_to_evaluate",
        )
    batch = await _start_batch(
        session, BatchKind.final, competition.private_seeds, kit=kit, actor=actor, now=now
    )
    by_team: dict[int, list[Submission]] = defaultdict(list)
    for submission in submissions:
        by_team[submission.team_id].append(submission)
    run_ids = await _add_entries(session, batch, submissions)
    competition.final_batch_id = batch.id
    competition.final_started_at = now
    competition.updated_at = now
    await session.flush()
    await audit.record(
        session,
        "competition.final_start",
        actor=actor,
        target_type="batch",
        target_id=batch.id,
        details={
            "teams": len(by_team),
            "submissions": len(submissions),
            "runs": len(run_ids),
            "picked_by_fallback": sorted(
                team_id
                for team_id, team_submissions in by_team.items()
                if not any(s.is_final for s in team_submissions)
            ),
        },
    )
    await session.run_sync(lambda sync: audit_phase_change(sync, now, actor_team_id=actor.id))
    _send_after_commit(session, broker, run_ids, public=False)
    _after_change(session, redis, broker)
    return batch


async def reveal(
    session: AsyncSession, *, actor: Team, redis: Redis, broker: Broker, now: datetime
) -> Competition:
    competition = await load(session, lock=True)
    phase = phase_at(competition, now)
    if phase == Phase.revealed:
        raise Conflict(_("The final results are already revealed."), code="already_revealed")
    if phase != Phase.final or competition.final_batch_id is None:
        raise Conflict(
            _("Start the final evaluation first; the reveal shows its results."),
            code="final_not_started",
            details={"phase": phase},
        )
    progress = await evaluation.progress(session, competition.final_batch_id)
    if progress.done < progress.total:
        raise Conflict(
            _(
                "The final evaluation is still running: %(done)s of %(total)s runs done. "
                "Reveal once it has finished.",
                done=progress.done,
                total=progress.total,
            ),
            code="final_running",
            details={"done": progress.done, "total": progress.total},
        )
    competition.revealed_at = now
    competition.updated_at = now
    await session.flush()
    await audit.record(
        session,
        "competition.reveal",
        actor=actor,
        target_type="competition",
        target_id=COMPETITION_ID,
    )
    await session.run_sync(lambda sync: audit_phase_change(sync, now, actor_team_id=actor.id))
    _after_change(session, redis, broker)
    return competition
