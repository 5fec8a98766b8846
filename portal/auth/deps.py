"""Who is calling: API token (Bearer / X-API-Token) or signed session cookie.

Authorization happens here, once: handlers declare `CurrentTeam`, `AdminTeam`,
`PageTeam` or `PageAdmin` and get a team or never run. Cookie-authenticated requests
that change state must carry the session's CSRF token (form field or header); token
authenticated API calls carry no ambient credential and need none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from portal.core.cookies import session_data
from portal.core.db import SessionDep
from portal.core.deps import RedisDep
from portal.core.errors import Forbidden, LoginRequired, Unauthorized
from portal.core.i18n import gettext as _
from portal.core.logging import team_id_var
from portal.core.security import tokens_match
from portal.llm.run_tokens import is_run_token
from portal.teams import service as teams
from portal.teams.models import Role, Team


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: what the layout needs, detached from the database."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
REVOKED_SESSION_PREFIX = "revoked_session"


def request_api_token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-token") or None


async def submitted_csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def verify_csrf(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token does not match the session's."""
    data = session_data(request)
    if not tokens_match(data.csrf if data else None, await submitted_csrf_token(request)):
        raise Forbidden(
            _("The form's security token is missing or expired. Reload the page and try again."),
            code="csrf_failed",
        )


async def _team_from_cookie(request: Request, session: SessionDep, redis: Redis) -> Team | None:
    data = session_data(request)
    if data is None or data.team_id is None:
        return None
    team = await session.get(Team, data.team_id)
    if team is None or not team.is_active or team.session_epoch != data.epoch:
        return None
    if data.session_id and await redis.exists(f"{REVOKED_SESSION_PREFIX}:{data.session_id}"):
        return None
    return team


async def optional_team(request: Request, session: SessionDep, redis: RedisDep) -> Team | None:
    token = request_api_token(request)
    if token is not None:
        if is_run_token(token):
            raise Unauthorized(
                _(
                    "This is an evaluation run's token: it only works on the LLM gateway "
                    "(/llm/v1/...). Use your team's API token here."
                ),
                code="invalid_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        team = await teams.find_by_token(session, token)
        if team is None or not team.is_active:
            raise Unauthorized(
                _("The API token is not valid or the team is deactivated."),
                code="invalid_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.auth_method = "token"
    else:
        team = await _team_from_cookie(request, session, redis)
        if team is None:
            return None
        request.state.auth_method = "session"
        if request.method not in SAFE_METHODS:
            await verify_csrf(request)
    # A plain snapshot for templates: error pages render after the session rolled back,
    # when the ORM object can no longer load its attributes.
    request.state.viewer = Viewer(id=team.id, name=team.name, role=team.role)
    team_id_var.set(team.id)
    return team


OptionalTeam = Annotated[Team | None, Depends(optional_team)]


async def current_team(team: OptionalTeam) -> Team:
    if team is None:
        raise Unauthorized(
            _("Log in, or send your API token as 'Authorization: Bearer <token>'."),
            headers={"WWW-Authenticate": "Bearer"},
        )
    return team


async def require_admin(team: Annotated[Team, Depends(current_team)]) -> Team:
    if not team.is_admin:
        raise Forbidden(_("This needs an admin account."), code="admin_required")
    return team


async def page_team(team: OptionalTeam) -> Team:
    if team is None:
        raise LoginRequired()
    return team


async def page_admin(team: Annotated[Team, Depends(page_team)]) -> Team:
    if not team.is_admin:
        raise LoginRequired()
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]
AdminTeam = Annotated[Team, Depends(require_admin)]
PageTeam = Annotated[Team, Depends(page_team)]
PageAdmin = Annotated[Team, Depends(page_admin)]
CsrfProtected = Depends(verify_csrf)
