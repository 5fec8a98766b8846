"""Admin CSV exports: standings, a batch's runs, submissions, LLM usage, the audit log.

Each export is a query (the one its page or API runs, from the domain that owns it) and
the columns to write; `csv_response` streams any of them the same way: rows come from a
server-side cursor a partition at a time, so a million audit rows never sit in memory.

Every file is UTF-8 with a byte order mark, a header row, timestamps in ISO 8601 UTC,
and text cells escaped against formula injection (see `text_cell`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from portal.audit import service as audit
from portal.audit.models import AuditLog
from portal.evaluation.models import BatchSubmission, EvaluationBatch, EvaluationRun
from portal.leaderboard import service as batch_boards
from portal.leaderboard import standings
from portal.llm import service as usage
from portal.llm.budgets import Refusal
from portal.llm.models import LlmUsageLog
from portal.submissions import service as submissions
from portal.submissions.models import Submission
from portal.teams.models import Team

# Excel opens a double-clicked .csv in the system's legacy code page (CP949 on a Korean
# Windows) unless the file starts with a UTF-8 byte order mark: without it every Korean
# team name turns into mojibake. Python's csv ("utf-8-sig"), pandas, LibreOffice and
# Google Sheets all read the mark as what it is, so it costs the other tools nothing.
BOM = "\ufeff"
# A cell starting with one of these is a formula (or, with tab and carriage return,
# can become one) to Excel, LibreOffice and Google Sheets (OWASP "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Rows fetched from the server-side cursor per round trip, and written per chunk sent.
ROWS_PER_CHUNK = 1000

Cell = str | int | float | bool | datetime | dict[str, Any] | list[Any] | None


def text_cell(text: str) -> str:
    """Text that a spreadsheet shows as text: a leading formula character gets a single
    quote in front, as OWASP advises, so `=HYPERLINK(...)` opens as the characters a
    team typed, never as a live link or a call.

    Only text is escaped: numbers are written by `cell` from numbers, so a score of
    -3.5 stays a number a spreadsheet can sort and sum, while a team named "-2+3" (text
    that merely looks like arithmetic) is escaped."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, full precision: 2026-11-28T04:20:00.123456Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cell(value: Cell) -> str | int | float:
    """One value as the csv module should write it."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text_cell(str(value))


@dataclass(frozen=True)
class Export:
    """One CSV file: its name (without date and extension), header, rows and how a row
    becomes its cells (by default, the row's columns in the header's order)."""

    name: str
    header: Sequence[str]
    statement: sa.Select[Any] | Any  # any SELECT; its row shape varies by export
    to_cells: Callable[[Row[Any]], Sequence[Cell]] = tuple


def _taken(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return chunk


async def csv_rows(
    sessionmaker: async_sessionmaker[AsyncSession], export: Export
) -> AsyncIterator[bytes]:
    """The file, a chunk per partition of rows read from a server-side cursor.

    Its own session: the request's has committed and closed before the body is sent.
    Should the database fail halfway, the exception ends the response without its
    final chunk, so the download fails visibly instead of looking complete but short.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: CRLF line ends, quotes doubled inside quotes
    buffer.write(BOM)
    writer.writerow(export.header)
    yield _taken(buffer)
    async with sessionmaker() as session:
        result = await session.stream(export.statement.execution_options(yield_per=ROWS_PER_CHUNK))
        async for partition in result.partitions():
            writer.writerows([cell(value) for value in export.to_cells(row)] for row in partition)
            yield _taken(buffer)


def csv_response(
    sessionmaker: async_sessionmaker[AsyncSession], export: Export, now: datetime
) -> StreamingResponse:
    filename = f"{export.name}-{now.astimezone(UTC):%Y-%m-%d}.csv"
    return StreamingResponse(
        csv_rows(sessionmaker, export),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Admin data: no shared or browser cache keeps a copy.
            "Cache-Control": "no-store",
        },
    )


# The exports. Each reads its rows with its domain's own query, so a file holds exactly
# what the matching page or API shows for the same filters.

# What every ranking (a competition board, a batch's) starts with.
RANKED_HEADER = ("rank", "team_id", "team", "score", "submission_id", "submitted_at")
BOARD_HEADER = (*RANKED_HEADER, "entries", "last_upload_at")


def board_standings(choice: standings.Choice, query: str) -> Export:
    """A competition board (public, frozen, live or final); the final board carries each
    team's rank and score on the board the room saw before it, as the page does."""
    header: tuple[str, ...] = BOARD_HEADER
    if choice.shown == standings.Board.final:
        header += (f"{choice.compared_with}_rank", f"{choice.compared_with}_score")
    return Export(f"standings-{choice.shown}", header, standings.board_statement(choice, query))


def batch_standings(batch: EvaluationBatch, previous: EvaluationBatch | None, query: str) -> Export:
    """A batch's own ranking, with each team's rank in the batch started before it."""
    return Export(
        f"standings-batch-{batch.id}",
        (*RANKED_HEADER, "runs_done", "runs_total", "previous_rank"),
        batch_boards.board_statement(batch, previous, query),
    )


RUN_COLUMNS = {
    "run_id": col(EvaluationRun.id),
    "batch_id": col(EvaluationRun.batch_id),
    "team_id": col(Team.id),
    "team": col(Team.name),
    "submission_id": col(BatchSubmission.submission_id),
    "seed": col(EvaluationRun.seed),
    "status": col(EvaluationRun.status),
    "score": col(EvaluationRun.score),
    "reason": col(EvaluationRun.reason),
    "attempts": col(EvaluationRun.attempts),
    "exit_code": col(EvaluationRun.exit_code),
    "exit_signal": col(EvaluationRun.exit_signal),
    "duration_ms": col(EvaluationRun.duration_ms),
    "cpu_user_ms": col(EvaluationRun.cpu_user_ms),
    "cpu_system_ms": col(EvaluationRun.cpu_system_ms),
    "peak_memory_bytes": col(EvaluationRun.peak_memory_bytes),
    "output_bytes": col(EvaluationRun.output_bytes),
    "output_truncated": col(EvaluationRun.output_truncated),
    "worker": col(EvaluationRun.worker_id),
    "started_at": col(EvaluationRun.started_at),
    "finished_at": col(EvaluationRun.finished_at),
}


def batch_runs(batch: EvaluationBatch) -> Export:
    """Every run of the batch, in queue order as the batch page lists them, with what
    each cost (empty where it was not measured)."""
    statement = (
        sa.select(*RUN_COLUMNS.values())
        .join(BatchSubmission, col(BatchSubmission.id) == EvaluationRun.batch_submission_id)
        .join(Team, col(Team.id) == BatchSubmission.team_id)
        .where(col(EvaluationRun.batch_id) == batch.id)
        .order_by(col(EvaluationRun.queue_position), col(EvaluationRun.id))
    )
    return Export(f"runs-batch-{batch.id}", tuple(RUN_COLUMNS), statement)


def all_submissions() -> Export:
    """Every team's uploads, oldest first, with the public result the board counts."""
    result = submissions.public_result()
    statement = (
        sa.select(
            col(Submission.id),
            col(Team.id),
            col(Team.name),
            col(Submission.filename),
            col(Submission.sha256),
            col(Submission.size_bytes),
            col(Submission.created_at),
            sa.func.coalesce(result.c.status, submissions.NOT_EVALUATED),
            result.c.mean_score,
            col(Submission.is_final),
        )
        .join(Team, col(Team.id) == Submission.team_id)
        .outerjoin(result, sa.true())
        .order_by(col(Submission.created_at), col(Submission.id))
    )
    return Export(
        "submissions",
        (
            "submission_id",
            "team_id",
            "team",
            "filename",
            "sha256",
            "size_bytes",
            "uploaded_at",
            "public_status",
            "public_score",
            "final_pick",
        ),
        statement,
    )


def usage_per_minute(scope: usage.WindowScope, window: usage.Window) -> Export:
    """Gateway calls per team and minute over the usage page's window (only the minutes
    with calls), counted as the usage page counts them."""
    minute = sa.func.date_bin(
        sa.text("interval '1 minute'"), col(LlmUsageLog.created_at), scope.since
    ).label("minute")
    statement = (
        sa.select(col(Team.id), col(Team.name), minute, *usage.totals_columns())
        .join(Team, col(Team.id) == LlmUsageLog.team_id)
        .where(*scope.calls)
        .group_by(col(Team.id), col(Team.name), minute)
        .order_by(minute, col(Team.name), col(Team.id))
    )

    refused_by = tuple(f"refused_{kind}" for kind in Refusal)
    counted = ("calls", "allowed", "refused", *refused_by, "failed")
    tokens = ("prompt_tokens", "completion_tokens")

    def cells(row: Row[Any]) -> Sequence[Cell]:
        values = row._mapping
        # avg() is a numeric (a Decimal): written as a number, to a tenth of a ms.
        latency = round(float(row.latency), 1) if row.latency is not None else None
        return (
            row.id,
            row.name,
            row.minute,
            *(values[name] for name in counted),
            *(int(values[name]) for name in tokens),
            latency,
        )

    return Export(
        f"usage-{window}",
        ("team_id", "team", "minute", *counted, *tokens, "mean_latency_ms"),
        statement,
        cells,
    )


AUDIT_COLUMNS = {
    "id": col(AuditLog.id),
    "created_at": col(AuditLog.created_at),
    "actor_team_id": col(AuditLog.actor_team_id),
    "actor_team": col(Team.name),
    "actor_role": col(AuditLog.actor_role),
    "action": col(AuditLog.action),
    "target_type": col(AuditLog.target_type),
    "target_id": col(AuditLog.target_id),
    "ip": col(AuditLog.ip),
    "request_id": col(AuditLog.request_id),
    "details": col(AuditLog.details),
}


def audit_log(filters: audit.AuditFilter) -> Export:
    """The audit page's entries for the same filters, newest first; details as JSON."""
    statement = audit.entries_statement(filters).with_only_columns(*AUDIT_COLUMNS.values())
    return Export("audit", tuple(AUDIT_COLUMNS), statement)
