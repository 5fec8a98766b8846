"""The competition's boards: page, HTMX fragment, projector and JSON, behind one ETag.

A poll whose If-None-Match matches answers 304 after Redis reads alone (the board's
version and the competition's state); a visitor's poll touches no database at all, so
hundreds of screens polling every two seconds cost almost nothing. A new version is
rendered once per process and served from cache.py's LRU to every poller after that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.auth.deps import optional_team, request_api_token
from portal.competition import service as competition_service
from portal.competition.header import phase_header, show_phase_in_header
from portal.competition.phases import CompetitionState
from portal.core.config import Settings
from portal.core.cookies import session_data
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, RedisDep, SessionmakerDep, SettingsDep
from portal.core.errors import Forbidden, NotFound
from portal.core.htmx import wants_fragment
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_PAGE, MAX_ROW_ID, PageParams
from portal.core.params import OptionalRowId
from portal.core.templating import render, templates
from portal.core.text import FreeText
from portal.leaderboard import service, standings
from portal.leaderboard.cache import RenderCache, cache_headers, etag, not_modified
from portal.leaderboard.schemas import (
    BatchBoardPublic,
    BoardRowPublic,
    CompetitionBoardPublic,
    FinalProgress,
    StandingRowPublic,
)
from portal.leaderboard.standings import Board, Choice

# Included without the header dependency the other page routers carry (see main.py):
# a board poll is answered with as little work as possible, so the two full pages here
# ask for the header themselves.
router = APIRouter(tags=["leaderboard"])
PAGE_SIZE = 50
PROJECTOR_PAGE_SIZE = 20  # rows that fit a 1920x1080 screen (tests/e2e)
PROJECTOR_PAGE_SECONDS = 10
BatchQuery = Annotated[
    OptionalRowId,
    Query(description="admin only: one batch's own ranking instead of the competition's board"),
]
BoardQuery = Annotated[
    Board | None,
    Query(
        description="public (frozen for non-admins during the freeze), live (admin), final "
        "(admin until the reveal); default: the current board, public until the reveal"
    ),
]
SearchQuery = Annotated[FreeText, Query(max_length=100, description="team name contains")]
PageQuery = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def clock_time(at: datetime, timezone: str) -> str:
    """ "14:00 (Europe/Paris)": when the board froze, as the room reads its clocks."""
    return f"{at.astimezone(ZoneInfo(timezone)):%H:%M} ({timezone})"


def frozen_label(choice: Choice, timezone: str) -> str | None:
    return clock_time(choice.frozen_at, timezone) if choice.frozen_at else None


T = TypeVar("T")


def _one_per_app(request: Request, name: str, make: Callable[[], T]) -> T:
    """One per app (so test apps sharing a process never see each other's)."""
    state = request.app.state
    if not hasattr(state, name):
        setattr(state, name, make())
    return getattr(state, name)


def board_cache(request: Request) -> RenderCache:
    return _one_per_app(request, "board_cache", RenderCache)


def board_state_memory(request: Request) -> service.BoardStateMemory:
    return _one_per_app(request, "board_state_memory", service.BoardStateMemory)


async def viewer_is_admin(
    request: Request, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> bool:
    """Whether an admin is asking. A visitor (no token, no logged-in cookie) costs no
    lookup; a logged-in viewer costs the usual session check (which also gives the
    page its navigation)."""
    data = session_data(request)
    if request_api_token(request) is None and (data is None or data.team_id is None):
        return False
    async with sessionmaker() as session:
        team = await optional_team(request, session, redis)
    return team is not None and team.is_admin


@dataclass(frozen=True)
class BoardRequest:
    """What one request's board depends on; every field is in its ETag."""

    competition: CompetitionState
    now: datetime
    version: int
    refreshed_at: float | None
    admin: bool
    asked: Board | None
    choice: Choice
    q: str
    page: PageParams

    @property
    def phase(self) -> str:
        return self.competition.phase(self.now)

    def etag(self, kind: str) -> str:
        return etag(
            self.version,
            kind,
            self.refreshed_at,
            self.phase,
            self.competition.updated_at.isoformat(),
            self.asked,
            self.choice.shown,
            self.admin,
            self.page.page,
            self.page.size,
            self.q,
        )


async def board_request(
    request: Request,
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
    asked: Board | None,
    q: str,
    page: PageParams,
) -> BoardRequest:
    # The version is read before any row: rows read afterwards are at least that new,
    # so a body cached under this version is never older than it claims.
    state = await board_state_memory(request).read(redis, sessionmaker)
    admin = await viewer_is_admin(request, redis, sessionmaker)
    return board_request_of(state, now, admin, asked, q, page)


def board_request_of(
    state: service.BoardState,
    now: datetime,
    admin: bool,
    asked: Board | None,
    q: str,
    page: PageParams,
) -> BoardRequest:
    """The one way a board request (and so its ETag) is made: the routes and the
    unchanged-poll shortcut (shortcut.py) both build it here."""
    return BoardRequest(
        competition=state.competition,
        now=now,
        version=state.version,
        refreshed_at=state.refreshed_at,
        admin=admin,
        asked=asked,
        choice=standings.choose(asked, state.competition, now, admin=admin),
        q=q,
        page=page,
    )


async def _final_progress(session: AsyncSession, board: BoardRequest) -> FinalProgress | None:
    batch_id = board.competition.final_batch_id
    if board.choice.shown != Board.final or batch_id is None:
        return None
    done, total = await service.batch_progress(session, batch_id)
    return FinalProgress(done=done, total=total)


@router.get("/api/v1/leaderboard", response_model=CompetitionBoardPublic | BatchBoardPublic)
async def leaderboard_api(
    request: Request,
    sessionmaker: SessionmakerDep,
    redis: RedisDep,
    clock: ClockDep,
    batch: BatchQuery = None,
    board: BoardQuery = None,
    q: SearchQuery = "",
    page: PageQuery = 1,
    size: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> Response:
    """The competition's board (see `board`), with an ETag; `batch`: a batch's ranking."""
    params = PageParams(page=page, size=size)
    if batch is not None:
        async with sessionmaker() as session:
            return await _batch_board(request, session, redis, batch, q, params)
    asked = await board_request(request, redis, sessionmaker, clock(), board, q, params)
    tag = asked.etag("api")
    if cached := not_modified(request, tag):
        return cached

    async def body() -> bytes:
        async with sessionmaker() as session:
            rows = await standings.rows(session, asked.choice, params, q)
            progress = await _final_progress(session, asked)
        return (
            CompetitionBoardPublic(
                **rows.map(StandingRowPublic.model_validate).model_dump(),
                board=asked.choice.shown,
                phase=asked.phase,
                frozen_at=asked.choice.frozen_at,
                competition=asked.competition.name,
                version=asked.version,
                final_progress=progress,
            )
            .model_dump_json()
            .encode()
        )

    content = await board_cache(request).get(tag, body)
    return Response(content, media_type="application/json", headers=cache_headers(tag))


async def _batch_board(
    request: Request,
    session: AsyncSession,
    redis: Redis,
    batch: int,
    q: str,
    params: PageParams,
) -> Response:
    """A batch's own ranking: an admin view (ad-hoc runs and re-runs), never public."""
    team = await optional_team(request, session, redis)
    if team is None or not team.is_admin:
        raise Forbidden(
            _(
                "A batch's own ranking is for admins only; the competition's board is "
                "GET /api/v1/leaderboard without `batch`."
            ),
            code="admin_required",
        )
    version, _changed = await service.state(redis)
    tag = etag(version, "batch", batch, q, params.page, params.size)
    if cached := not_modified(request, tag):
        return cached
    view = await service.board_view(session, batch, q, params, version)
    chosen = view.batch
    body = BatchBoardPublic(
        **view.rows.map(BoardRowPublic.model_validate).model_dump(),
        batch_id=chosen.id if chosen else None,
        batch_name=chosen.name if chosen else None,
        batch_status=chosen.status if chosen else None,
        runs_done=view.runs_done,
        runs_total=view.runs_total,
        version=view.version,
    )
    return Response(
        body.model_dump_json(), media_type="application/json", headers=cache_headers(tag)
    )


def _board_query(board: BoardRequest, **extra: Any) -> dict[str, Any]:
    """The query that names this board again: a board asked for by name stays; without
    one, polls follow the current board (public, then final after the reveal)."""
    query = {"board": board.asked, "q": board.q, **extra}
    return {k: v for k, v in query.items() if v}


async def _board_html(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, board: BoardRequest
) -> bytes:
    async with sessionmaker() as session:
        rows = await standings.rows(session, board.choice, board.page, board.q)
        progress = await _final_progress(session, board)
    context = {
        "settings": settings,
        "board": board,
        "competition": board.competition,
        "phase": board.phase,
        "shown": board.choice.shown,
        "frozen_at": board.choice.frozen_at,
        "frozen_label": frozen_label(board.choice, settings.timezone),
        "tabs": standings.tabs(board.competition, admin=board.admin),
        "rows": rows,
        "q": board.q,
        "poll_query": _board_query(board, page=rows.page),
        "base_query": _board_query(board),
        "final_progress": progress,
        "refreshed_at": board.refreshed_at,
        # The header's phase steps: a page left open follows the phases no clock can
        # foresee (the final evaluation, the reveal) or a moved date, by its board polls.
        "phase_steps": phase_header(board.competition, board.now).steps_json(settings.timezone),
    }
    return templates.env.get_template("leaderboard_board.html").render(context).encode()


@router.get("/leaderboard", include_in_schema=False)
async def leaderboard_page(
    request: Request,
    sessionmaker: SessionmakerDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    board: BoardQuery = None,
    q: SearchQuery = "",
    page: PageQuery = 1,
) -> Response:
    # Polls are read-only and mostly answered from Redis and the render cache: a
    # database session is opened only for what needs one.
    asked = await board_request(
        request, redis, sessionmaker, clock(), board, q, PageParams(page=page, size=PAGE_SIZE)
    )
    tag = asked.etag("fragment")
    fragment = wants_fragment(request)
    if fragment and (cached := not_modified(request, tag)):
        return cached
    html = await board_cache(request).get(tag, lambda: _board_html(sessionmaker, settings, asked))
    if fragment:
        return HTMLResponse(html, headers=cache_headers(tag))
    # The whole page carries the viewer's navigation (board_request looked the viewer up)
    # and CSRF token: never shared, never cached.
    # The fragment comes from our own autoescaping template: already safe HTML.
    board_html = Markup(html.decode())  # noqa: S704
    await show_phase_in_header(request, sessionmaker, redis, clock)
    return render(request, "leaderboard.html", {"board_html": board_html, "q": q, "asked": board})


@router.get("/leaderboard/projector", include_in_schema=False)
async def projector(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    page: PageQuery = 1,
    since: Annotated[float, Query(ge=0, le=1e10, allow_inf_nan=False)] = 0,
) -> Response:
    """Full screen, large type; pages through the current board by itself.

    Never pinned (an old `?batch=` or `?board=` is ignored): it is put up once before
    the event and left alone, and shows what the room may see (the frozen board during
    the freeze, the final one after the reveal), even on an admin's machine."""
    now = clock()
    now_seconds = now.timestamp()
    competition = await competition_service.current(session, redis)
    version, refreshed_at = await service.state(redis)
    choice = standings.choose(None, competition, now, admin=False)
    params = PageParams(page=page, size=PROJECTOR_PAGE_SIZE)
    rows = await standings.rows(session, choice, params)
    pages = rows.pages
    if since and now_seconds - since >= PROJECTOR_PAGE_SECONDS:
        page, since = (page % pages) + 1, now_seconds
    elif page > pages:
        page, since = 1, now_seconds  # fewer teams than a moment ago: start from the top
    if page != rows.page:
        rows = await standings.rows(session, choice, PageParams(page=page, size=params.size))
    return render(
        request,
        "projector.html",
        {
            "competition": competition,
            "phase": competition.phase(now),
            "shown": choice.shown,
            "frozen_label": frozen_label(choice, settings.timezone),
            "rows": rows,
            "pages": pages,
            "page_started": since or now_seconds,
            "version": version,
            "refreshed_at": refreshed_at,
        },
        block="projector_board",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/leaderboard/teams/{team_id}", include_in_schema=False)
async def team_page(
    request: Request,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    """A team's public record: its row on the board everyone sees and its public scores
    over its uploads; never a batch's or a private result."""
    await optional_team(request, session, redis)
    await show_phase_in_header(request, sessionmaker, redis, clock)
    competition = await competition_service.current(session, redis)
    now = clock()
    view = await standings.team_view(session, competition, now, team_id)
    if view is None:
        raise NotFound(_("No team #%(id)s on the leaderboard.", id=team_id))
    public = standings.choose(standings.Board.public, competition, now, admin=False)
    return render(
        request,
        "leaderboard_team.html",
        {
            "view": view,
            "team": view.team,
            "points": service.sparkline([score for _at, score in view.scores]),
            "frozen_label": frozen_label(public, settings.timezone),
        },
    )
