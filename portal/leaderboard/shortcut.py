"""A visitor's unchanged board poll, answered before routing.

Every open board page polls `/leaderboard` every 2 s with its ETag, and nearly every
poll is unchanged. FastAPI's routing and dependency resolution were most of what such a
304 cost, so this middleware answers it first: for a visitor (no token, no logged-in
session) polling the plain board fragment, it builds the same board request as the
route (routes.board_request_of, from the same remembered state) and answers 304 when
the ETag still matches. Anything else (a search, a logged-in viewer, an odd parameter,
a board this visitor may not see) goes on to the route, which decides as always.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.auth.deps import request_api_token
from portal.core.cookies import session_data
from portal.core.errors import PortalError
from portal.core.htmx import wants_fragment
from portal.core.pagination import MAX_PAGE, PageParams
from portal.leaderboard.cache import cache_headers
from portal.leaderboard.routes import (
    PAGE_SIZE,
    board_request_of,
    board_state_memory,
)
from portal.leaderboard.standings import Board

PATH = "/leaderboard"
BOARDS = {board.value: board for board in Board}


class UnchangedBoardShortcut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH:
            request = Request(scope)
            tag = request.headers.get("if-none-match")
            if tag and tag == await _current_tag_or_none(request):
                await Response(status_code=304, headers=cache_headers(tag))(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _current_tag_or_none(request: Request) -> str | None:
    try:
        return await current_tag(request)
    except Exception:
        # Redis away, a state that does not parse: the route answers it (and reports it).
        return None


async def current_tag(request: Request) -> str | None:
    """The fragment's ETag as the route would make it now; None whenever the route
    must decide."""
    if not wants_fragment(request) or request_api_token(request) is not None:
        return None
    session = session_data(request)
    if session is not None and session.team_id is not None:
        return None  # logged in: the route looks the viewer up (admins see more)
    asked, page = _plain_query(request)
    if page is None:
        return None
    state = request.app.state
    board = await board_state_memory(request).read(state.redis, state.sessionmaker)
    try:
        board_request = board_request_of(
            board, state.clock(), False, asked, "", PageParams(page=page, size=PAGE_SIZE)
        )
    except PortalError:
        return None  # a board this visitor may not see: the route says so
    return board_request.etag("fragment")


def _plain_query(request: Request) -> tuple[Board | None, int | None]:
    """(board, page) of a query with nothing but those two, well formed; page None if
    not (a search, an unknown parameter, a value the route would refuse)."""
    query = request.query_params
    if set(query) - {"board", "page"} or len(query.multi_items()) != len(query):
        return None, None
    board_text, page_text = query.get("board"), query.get("page", "1")
    if board_text is not None and board_text not in BOARDS:
        return None, None
    if not page_text.isascii() or not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        return None, None
    return (BOARDS[board_text] if board_text else None), int(page_text)
