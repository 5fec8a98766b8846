"""`GET /api/v1/exports/*.csv`: admin downloads, linked from the matching admin pages.

Every check (admin, filters, the batch asked for) happens before the first byte is
sent, so a refusal is the usual JSON error, never a CSV cut short.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from portal.audit.deps import AuditFilterDep
from portal.auth.deps import AdminTeam
from portal.competition import service as competition_service
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, RedisDep, SessionmakerDep
from portal.core.errors import NotFound, PortalError
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_ROW_ID
from portal.core.params import OptionalRowId
from portal.evaluation import service as evaluation
from portal.exports import service
from portal.leaderboard import service as batch_boards
from portal.leaderboard import standings
from portal.leaderboard.routes import BatchQuery, BoardQuery, SearchQuery
from portal.llm import service as usage
from portal.teams import service as teams

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "the CSV file"}
}


@router.get("/standings.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
async def export_standings(
    admin: AdminTeam,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    redis: RedisDep,
    clock: ClockDep,
    board: BoardQuery = None,
    batch: BatchQuery = None,
    q: SearchQuery = "",
) -> StreamingResponse:
    """A board's standings as the leaderboard shows them to an admin (the final board
    too, before the reveal), or with `batch` a batch's own ranking; `q` as on the page."""
    now = clock()
    if batch is not None:
        if board is not None:
            raise PortalError(
                _(
                    "Give either `board` (a competition board) or `batch` (a batch's own "
                    "ranking), not both."
                ),
                code="validation_error",
                status_code=422,
            )
        chosen, previous, _ranked = await batch_boards.choose_batch(session, batch)
        if chosen is None or chosen.id != batch:
            raise NotFound(
                _("No started batch #%(id)s: a batch is ranked once it starts.", id=batch)
            )
        export = service.batch_standings(chosen, previous, q)
    else:
        competition = await competition_service.current(session, redis)
        export = service.board_standings(standings.choose(board, competition, now, admin=True), q)
    return service.csv_response(sessionmaker, export, now)


@router.get("/runs.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
async def export_runs(
    admin: AdminTeam,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    clock: ClockDep,
    batch: Annotated[int, Query(ge=1, le=MAX_ROW_ID, description="the batch's id")],
) -> StreamingResponse:
    """Every run of one batch: result, reason, attempts and what it cost."""
    export = service.batch_runs(await evaluation.get(session, batch))
    return service.csv_response(sessionmaker, export, clock())


@router.get("/submissions.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
async def export_submissions(
    admin: AdminTeam, sessionmaker: SessionmakerDep, clock: ClockDep
) -> StreamingResponse:
    """Every team's submissions with their public status and score and final pick."""
    return service.csv_response(sessionmaker, service.all_submissions(), clock())


@router.get("/usage.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
async def export_usage(
    admin: AdminTeam,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    clock: ClockDep,
    # An export with no filter holds everything, like the other exports; the usage
    # page's link passes the window it shows.
    window: Annotated[usage.Window, Query(description="hour, day or all")] = usage.Window.all,
    team_id: Annotated[
        OptionalRowId, Query(description="one team; default (or empty) every team")
    ] = None,
) -> StreamingResponse:
    """LLM gateway calls per team and minute over the usage page's window."""
    if team_id is not None:
        await teams.get(session, team_id)  # 404 for an unknown team
    now = clock()
    scope = await usage.window_scope(session, window, team_id=team_id, now=now)
    return service.csv_response(sessionmaker, service.usage_per_minute(scope, window), now)


@router.get("/audit.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
async def export_audit(
    admin: AdminTeam, filters: AuditFilterDep, sessionmaker: SessionmakerDep, clock: ClockDep
) -> StreamingResponse:
    """The audit log with the filters of `GET /api/v1/audit`, newest first."""
    return service.csv_response(sessionmaker, service.audit_log(filters), clock())
