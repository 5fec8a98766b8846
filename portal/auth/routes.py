from fastapi import APIRouter, Request, Response

from portal.auth import service
from portal.auth.deps import OptionalTeam
from portal.auth.schemas import LoginRequest, LoginResponse
from portal.core.db import SessionDep
from portal.core.security import SESSION_COOKIE, SessionSigner
from portal.core.templating import set_session_cookie
from portal.teams.schemas import TeamPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, request: Request, response: Response, session: SessionDep):
    """Exchange email + API token for a session cookie (for browser-like clients)."""
    team = await service.login(request, session, body.email, body.api_token)
    data = SessionSigner.new_login(team.id, team.session_epoch)
    set_session_cookie(request, response, data)
    return LoginResponse(team=TeamPublic.model_validate(team), csrf_token=data.csrf)


@router.post("/logout", status_code=204)
async def logout(request: Request, session: SessionDep, team: OptionalTeam) -> Response:
    await service.logout(request, session, team)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response
