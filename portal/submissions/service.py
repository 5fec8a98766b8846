"""Submission rules: validation, content-addressed storage, the daily quota, final picks.

Takes a session, never commits: the request's transaction makes the quota increment,
the submission row and the audit row land together or not at all.

About 400 lines, kept as one module: an upload's rules (validation, the quota row
lock, the duplicate check, storage) and the final picks share the team's quota and
submission rows, and read best top to bottom in the order an upload meets them.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.selectable import LateralFromClause
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from portal.audit import service as audit
from portal.competition.models import COMPETITION_ID, Competition
from portal.core.bodylimit import too_large_message
from portal.core.config import Settings
from portal.core.errors import Conflict, NotFound, PortalError, ServiceUnavailable, TooManyRequests
from portal.core.i18n import format_datetime
from portal.core.i18n import gettext as _
from portal.core.pagination import Page, PageParams, paginate
from portal.core.storage import Storage, StorageUnavailable, content_key
from portal.core.time import competition_day, next_midnight
from portal.evaluation import service as evaluation
from portal.evaluation.models import BatchKind, BatchSubmission, EvaluationBatch, RunStatus
from portal.submissions.models import Submission, SubmissionQuota
from portal.submissions.schemas import BatchResultPublic, BatchResultRuns
from portal.teams.models import Team

NOT_EVALUATED = "not evaluated"
PENDING = (RunStatus.queued, RunStatus.running)
SHORT_REASON_CHARS = 160
MAX_NOTE_CHARS = 500
MAX_FILENAME_CHARS = 255


class InvalidSubmission(PortalError):
    status_code = 422


@dataclass(frozen=True)
class Quota:
    used: int
    limit: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class SubmissionView:
    """A submission with its public evaluation: status, score, and for a run that did
    not score, the first failing seed's reason in one line."""

    submission: Submission
    status: str
    score: float | None
    reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.status in PENDING


def daily_limit(team: Team, settings: Settings) -> int:
    if team.daily_submission_limit is not None:
        return team.daily_submission_limit
    return settings.daily_submissions


async def quota_for(session: AsyncSession, team: Team, settings: Settings, now: datetime) -> Quota:
    day = competition_day(now, settings.timezone)
    used = await session.scalar(
        sa.select(col(SubmissionQuota.used)).where(
            col(SubmissionQuota.team_id) == team.id,
            col(SubmissionQuota.day) == day,
        )
    )
    return Quota(used or 0, daily_limit(team, settings), next_midnight(now, settings.timezone))


def display_filename(filename: str | None) -> str:
    """The last path component, printable, bounded: shown to people, never used as a path."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-MAX_FILENAME_CHARS:]


def validate_source(filename: str, content: bytes, max_bytes: int) -> None:
    """Each rule with its own message, in the order a person would fix them."""
    if not filename.lower().endswith(".py"):
        raise InvalidSubmission(
            _(
                "'%(filename)s' is not a Python file: the name must end in .py.",
                filename=filename or _("(no name)"),
            ),
            code="not_python_file",
        )
    if not content.removeprefix(codecs.BOM_UTF8):
        raise InvalidSubmission(
            _("The file is empty. Upload a .py file with your solution."), code="empty_file"
        )
    if len(content) > max_bytes:
        # A PortalError like every other refusal of the file, so a form shows it.
        raise InvalidSubmission(
            too_large_message(max_bytes), code="payload_too_large", status_code=413
        )
    nul_at = content.find(b"\x00")
    if nul_at >= 0:
        raise InvalidSubmission(
            _(
                "The file contains a NUL byte (at byte %(position)s); a Python source file cannot.",
                position=nul_at,
            ),
            code="nul_byte",
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise InvalidSubmission(
            _(
                "The file is not valid UTF-8 (line %(line)s, byte %(byte)s). Save it as UTF-8.",
                line=line,
                byte=exc.start,
            ),
            code="not_utf8",
            details={"line": line, "byte": exc.start},
        ) from exc
    try:
        # Python reads past a UTF-8 byte-order mark (Windows editors write one), but
        # ast.parse of decoded text does not: parse what the interpreter will run. The
        # bytes are stored as uploaded: they run as they are, the download gives the
        # team back its own file, and the sha256 is the one `sha256sum` shows them.
        ast.parse(text.removeprefix("\ufeff"), filename=filename)
    except SyntaxError as exc:
        raise InvalidSubmission(
            # Python's own words for the error stay English: they are what a search finds.
            _("Python syntax error on line %(line)s: %(error)s.", line=exc.lineno, error=exc.msg),
            code="syntax_error",
            details={"line": exc.lineno, "column": exc.offset, "message": exc.msg},
        ) from exc


async def _increment_quota(
    session: AsyncSession, team: Team, settings: Settings, now: datetime
) -> Quota:
    """Take one upload from today's quota, atomically, or refuse with 429.

    The upsert only increments while `used < limit`, and its row lock is held until the
    request's transaction ends, so parallel uploads can never overshoot the limit.
    """
    limit = daily_limit(team, settings)
    day = competition_day(now, settings.timezone)
    resets_at = next_midnight(now, settings.timezone)
    used = None
    if limit > 0:
        statement = (
            insert(SubmissionQuota)
            .values(team_id=team.id, day=day, used=1)
            .on_conflict_do_update(
                index_elements=[
                    col(SubmissionQuota.team_id),
                    col(SubmissionQuota.day),
                ],
                set_={"used": col(SubmissionQuota.used) + 1},
                where=col(SubmissionQuota.used) < limit,
            )
            .returning(col(SubmissionQuota.used))
        )
        used = await session.scalar(statement)
    if used is None:
        retry_after = max(1, int((resets_at - now).total_seconds()))
        raise TooManyRequests(
            _(
                "Daily limit reached: %(used)s of %(limit)s uploads used today. The quota "
                "resets at %(resets_at)s (midnight %(timezone)s).",
                used=limit,
                limit=limit,
                resets_at=format_datetime(resets_at, settings.timezone),
                timezone=settings.timezone,
            ),
            code="quota_exceeded",
            headers={"Retry-After": str(retry_after)},
            details={
                "used": limit,
                "limit": limit,
                "remaining": 0,
                "resets_at": resets_at.isoformat(),
            },
        )
    return Quota(used, limit, resets_at)


async def find_duplicate(session: AsyncSession, team: Team, sha256: str) -> Submission | None:
    return await session.scalar(
        sa.select(Submission).where(
            col(Submission.team_id) == team.id,
            col(Submission.sha256) == sha256,
        )
    )


def duplicate_error(earlier: Submission) -> Conflict:
    return Conflict(
        _(
            "This file is identical to your submission #%(id)s ('%(filename)s', uploaded "
            "%(uploaded)s). It was not counted against your quota.",
            id=earlier.id,
            filename=earlier.filename,
            uploaded=format_datetime(earlier.created_at, "UTC"),
        ),
        code="duplicate_submission",
        details={"submission_id": earlier.id},
    )


async def upload(
    session: AsyncSession,
    *,
    team: Team,
    filename: str | None,
    content: bytes,
    note: str,
    settings: Settings,
    storage: Storage,
    now: datetime,
) -> tuple[Submission, Quota]:
    name = display_filename(filename)
    validate_source(name, content, settings.max_upload_bytes)
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidSubmission(
            _(
                "The note is %(length)s characters; the limit is %(limit)s.",
                length=len(note),
                limit=MAX_NOTE_CHARS,
            ),
            code="note_too_long",
        )
    sha256 = hashlib.sha256(content).hexdigest()
    if earlier := await find_duplicate(session, team, sha256):
        raise duplicate_error(earlier)

    key = content_key(sha256)
    submission = Submission(
        team_id=team.id,
        sha256=sha256,
        size_bytes=len(content),
        filename=name,
        note=note.strip(),
        storage_key=key,
        created_at=now,
    )
    # The row goes in before the quota is taken: the unique (team, sha256) index makes
    # a parallel upload of the same file wait for this one and then fail here, so it is
    # refused as the duplicate it is (409), never as over quota. The row is added inside
    # the savepoint because opening one flushes what is pending, outside its protection.
    try:
        async with session.begin_nested():
            session.add(submission)
            await session.flush()
    except IntegrityError as exc:
        # The same file raced in through another request; that one won.
        earlier = await find_duplicate(session, team, sha256)
        raise duplicate_error(earlier) if earlier else Conflict(_("Duplicate upload.")) from exc
    quota = await _increment_quota(session, team, settings, now)
    try:
        # Content-addressed: writing an object that exists already is harmless.
        await run_in_threadpool(
            storage.put, key, io.BytesIO(content), len(content), "text/x-python"
        )
    except StorageUnavailable as exc:
        # Raising rolls back the quota increment and the row with the transaction.
        raise ServiceUnavailable(
            _(
                "File storage is unavailable right now, so nothing was saved and no quota "
                "was used. Try again in a minute."
            ),
            code="storage_unavailable",
        ) from exc
    await audit.record(
        session,
        "submission.upload",
        actor=team,
        target_type="submission",
        target_id=submission.id,
        details={
            "sha256": sha256,
            "size_bytes": len(content),
            "filename": name,
            "quota_used": quota.used,
            "quota_limit": quota.limit,
        },
    )
    return submission, quota


async def record_refusal(
    sessionmaker: async_sessionmaker[AsyncSession],
    team: Team,
    error: PortalError,
    filename: str | None,
) -> None:
    """A refused upload leaves an audit row even though its transaction rolls back."""
    await audit.record_now(
        sessionmaker,
        "submission.upload_refused",
        actor=team,
        target_type="team",
        target_id=team.id,
        details={
            "reason": error.code,
            "message": error.message[:300],
            "filename": display_filename(filename),
        },
    )


def _current_public_batch() -> sa.ScalarSelect[Any]:
    """The public batch on the current public seeds (NULL while none are set): the one
    the public board ranks, so a row's score is the score the board counts."""
    return (
        sa.select(col(Competition.public_batch_id))
        .where(col(Competition.id) == COMPETITION_ID)
        .scalar_subquery()
    )


def short_reason(status: str, seed_results: dict[str, Any] | None) -> str | None:
    """Why a public evaluation did not score, in one line: the first failing seed's
    reason up to its first sentence's end (the full reason and log are on the
    submission's page), with how many seeds failed when that is not all of them."""
    if status in (*PENDING, RunStatus.scored, NOT_EVALUATED) or not seed_results:
        return None
    ended = [r for r in seed_results.values() if r.get("status") != RunStatus.cancelled]
    failed = [r for r in ended if r.get("status") != RunStatus.scored]
    first = next((r.get("reason") for r in failed if r.get("reason")), None)
    if first is None:
        return None
    line = first.strip().splitlines()[0]
    sentence_end = line.find(". ")
    if sentence_end >= 0:
        line = line[: sentence_end + 1]
    if len(line) > SHORT_REASON_CHARS:
        line = line[: SHORT_REASON_CHARS - 1].rstrip() + "…"
    if len(failed) < len(ended):
        line += f" ({len(failed)} of {len(ended)} seeds)"
    return line


def _view(submission: Submission, row: Any | None) -> SubmissionView:
    if row is None or row.status is None:
        return SubmissionView(submission, NOT_EVALUATED, None)
    return SubmissionView(
        submission, row.status, row.mean_score, short_reason(row.status, row.seed_results)
    )


def _public_result_columns() -> tuple[Any, ...]:
    return (
        col(BatchSubmission.status),
        col(BatchSubmission.mean_score),
        col(BatchSubmission.seed_results),
    )


def public_result() -> LateralFromClause:
    """Each submission's entry in the current public batch (at most one: a batch holds a
    submission once), to outer-join beside `Submission`: its status, mean_score and
    seed_results. The team's list and the admin's CSV export both read it."""
    return (
        sa.select(*_public_result_columns())
        .where(
            col(BatchSubmission.submission_id) == Submission.id,
            col(BatchSubmission.batch_id) == _current_public_batch(),
        )
        .lateral("public_result")
    )


async def list_for_team(
    session: AsyncSession, team: Team, page: PageParams
) -> Page[SubmissionView]:
    result = public_result()
    statement = (
        sa.select(Submission, result.c.status, result.c.mean_score, result.c.seed_results)
        .outerjoin(result, sa.true())
        .where(col(Submission.team_id) == team.id)
        .order_by(
            col(Submission.created_at).desc(),
            col(Submission.id).desc(),
        )
    )
    return await paginate(session, statement, page, lambda row: _view(row[0], row))


async def get_own(session: AsyncSession, team: Team, submission_id: int) -> Submission:
    """The team's own submission; any other id (another team's included) is 404."""
    submission = await session.get(Submission, submission_id)
    if submission is None or submission.team_id != team.id:
        raise NotFound(_("You have no submission #%(id)s.", id=submission_id))
    return submission


async def view_of(session: AsyncSession, submission: Submission) -> SubmissionView:
    row = (
        await session.execute(
            sa.select(*_public_result_columns()).where(
                col(BatchSubmission.submission_id) == submission.id,
                col(BatchSubmission.batch_id) == _current_public_batch(),
            )
        )
    ).first()
    return _view(submission, row)


async def results_by_batch(
    session: AsyncSession, submission: Submission
) -> list[BatchResultPublic]:
    """The submission's public evaluations, newest first: the only ones a team sees of its
    own (admin batches are an organizer's view, the final evaluation is private)."""
    rows: sa.Result[*tuple[Any, ...]] = await session.execute(
        sa.select(
            col(BatchSubmission.batch_id),
            col(EvaluationBatch.name).label("batch_name"),
            col(BatchSubmission.status),
            col(BatchSubmission.mean_score),
            col(BatchSubmission.reason),
            col(BatchSubmission.finished_at),
        )
        .join(EvaluationBatch, col(EvaluationBatch.id) == BatchSubmission.batch_id)
        .where(
            col(BatchSubmission.submission_id) == submission.id,
            col(EvaluationBatch.kind) == BatchKind.public,
        )
        .order_by(col(BatchSubmission.batch_id).desc())
    )
    return [BatchResultPublic.model_validate(row) for row in rows]


async def results_with_runs(
    session: AsyncSession, submission: Submission, *, include_log: bool = True
) -> list[BatchResultRuns]:
    """Each public evaluation's result with its runs (what each cost, and its log unless
    `include_log` is False), for the team's own submission (never an admin batch's or
    the final evaluation's)."""
    # Runs are read batch by batch, of the public batches only: a private run's log is
    # never even loaded for a team's page.
    return [
        BatchResultRuns(
            **result.model_dump(),
            runs=await evaluation.list_runs(
                session, result.batch_id, submission_id=submission.id, include_log=include_log
            ),
        )
        for result in await results_by_batch(session, submission)
    ]


async def count_picks(session: AsyncSession, team: Team) -> int:
    return (
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(Submission)
            .where(
                col(Submission.team_id) == team.id,
                col(Submission.is_final),
            )
        )
        or 0
    )


async def set_final(
    session: AsyncSession,
    team: Team,
    submission: Submission,
    final: bool,
    *,
    limit: int,
    picks_open: bool = True,
) -> int:
    """Pick or unpick; idempotent; returns the picks used afterwards. Picks change only
    while uploads are open (`picks_open`): after the end they are what the final runs.

    Locking the team's row serialises concurrent toggles of one team, so the count
    checked here is the count that commits: the limit holds under any race.
    """
    await session.execute(sa.select(col(Team.id)).where(col(Team.id) == team.id).with_for_update())
    await session.refresh(submission)
    if submission.is_final == final:
        return await count_picks(session, team)
    if not picks_open:
        raise Conflict(
            _("Final picks are closed: they can change only while the competition is open."),
            code="picks_closed",
        )
    used = await count_picks(session, team)
    if final and used >= limit:
        raise Conflict(
            _(
                "You can pick at most %(limit)s final submissions and have picked %(used)s. "
                "Unpick one first.",
                limit=limit,
                used=used,
            ),
            code="final_pick_limit",
            details={"picks_used": used, "picks_limit": limit},
        )
    submission.is_final = final
    session.add(submission)
    await session.flush()
    await audit.record(
        session,
        "submission.pick" if final else "submission.unpick",
        actor=team,
        target_type="submission",
        target_id=submission.id,
        details={"picks_used": used + (1 if final else -1), "picks_limit": limit},
    )
    return used + (1 if final else -1)


async def open_file(storage: Storage, submission: Submission) -> Iterator[bytes]:
    try:
        return await run_in_threadpool(storage.get, submission.storage_key)
    except StorageUnavailable as exc:
        raise ServiceUnavailable(
            _("File storage is unavailable right now; try again."), code="storage_unavailable"
        ) from exc
    except KeyError as exc:
        raise NotFound(
            _("The file of submission #%(id)s is missing from storage.", id=submission.id),
            code="file_missing",
        ) from exc
