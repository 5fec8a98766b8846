"""Public leaderboard: page, HTMX fragment, projector and JSON, all behind one ETag.

A poll whose If-None-Match matches answers 304 after a single Redis read: no database
work at all, so hundreds of screens polling every two seconds cost almost nothing.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import optional_team
from portal.core.db import SessionDep
from portal.core.deps import RedisDep
from portal.core.errors import NotFound
from portal.core.htmx import VARY_HTMX, wants_fragment
from portal.core.pagination import MAX_PAGE, MAX_ROW_ID, PageParams
from portal.core.params import OptionalRowId
from portal.core.templating import render
from portal.core.text import FreeText
from portal.leaderboard import service
from portal.leaderboard.schemas import BoardRowPublic, LeaderboardPublic

router = APIRouter(tags=["leaderboard"])
PAGE_SIZE = 50
PROJECTOR_PAGE_SIZE = 8
PROJECTOR_PAGE_SECONDS = 10
BatchQuery = Annotated[
    OptionalRowId, Query(description="one batch; default (or empty): the latest started")
]
SearchQuery = Annotated[FreeText, Query(max_length=100, description="team name contains")]


def etag(version: int, *parts: object) -> str:
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:12]  # noqa: S324 (not security)
    return f'W/"lb{version}-{digest}"'


def cache_headers(tag: str) -> dict[str, str]:
    # no-cache (not no-store): browsers keep the copy and revalidate it with the ETag.
    return {"ETag": tag, "Cache-Control": "no-cache", "Vary": VARY_HTMX}


def not_modified(request: Request, tag: str) -> Response | None:
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=cache_headers(tag))
    return None


async def _board(
    session: AsyncSession,
    redis: Redis,
    batch: int | None,
    q: str,
    page: int,
    size: int,
    state: tuple[int, float | None] | None = None,
) -> service.BoardView:
    return await service.board_view(
        session, redis, batch, q, PageParams(page=page, size=size), state
    )


@router.get("/api/v1/leaderboard", response_model=LeaderboardPublic)
async def leaderboard_api(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    batch: BatchQuery = None,
    q: SearchQuery = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> Response:
    """The board of a batch (default: the latest started), public, with an ETag."""
    state = await service.state(redis)
    version = state[0]
    tag = etag(version, "api", batch, q, page, size)
    if cached := not_modified(request, tag):
        return cached
    view = await _board(session, redis, batch, q, page, size, state)
    chosen, rows = view.batch, view.rows.map(BoardRowPublic.model_validate)
    body = LeaderboardPublic(
        **rows.model_dump(),
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


@router.get("/leaderboard", include_in_schema=False)
async def leaderboard_page(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    batch: BatchQuery = None,
    q: SearchQuery = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    state = await service.state(redis)
    fragment = wants_fragment(request)
    tag = etag(state[0], "page", fragment, batch, q, page)
    if cached := not_modified(request, tag):
        return cached
    if not fragment:
        # Whole page: show the visitor's navigation if logged in. Polls skip this lookup.
        await optional_team(request, session, redis)
    view = await _board(session, redis, batch, q, page, PAGE_SIZE, state)
    return render(
        request,
        "leaderboard.html",
        view.template_context(),
        block="board",
        headers=cache_headers(tag),
    )


@router.get("/leaderboard/projector", include_in_schema=False)
async def projector(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    since: Annotated[float, Query(ge=0)] = 0,
) -> Response:
    """Full screen, large type; pages through the board by itself every few seconds.

    Never pinned to a batch (an old `?batch=` is ignored): it is put up once before the
    event and left alone, so it always shows the latest started batch's board."""
    now = time.time()
    turn = since and now - since >= PROJECTOR_PAGE_SECONDS
    view = await _board(session, redis, None, "", page, PROJECTOR_PAGE_SIZE)
    pages = view.rows.pages
    if turn:
        page, since = (page % pages) + 1, now
    elif page > pages:
        page, since = 1, now  # a newer batch has fewer teams: start again from the top
    if page != view.rows.page:
        view = await _board(session, redis, None, "", page, PROJECTOR_PAGE_SIZE)
    return render(
        request,
        "projector.html",
        {**view.template_context(), "page_started": since or now, "pages": pages},
        block="projector_board",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/leaderboard/teams/{team_id}", include_in_schema=False)
async def team_history(
    request: Request, session: SessionDep, team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
) -> Response:
    team, history = await service.team_history(session, team_id)
    if team is None:
        raise NotFound(f"No team #{team_id} on the leaderboard.")
    points = service.sparkline([entry.score for entry in history])
    return render(
        request, "leaderboard_team.html", {"team": team, "history": history, "points": points}
    )
