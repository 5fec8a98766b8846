from fastapi import APIRouter, Request, Response

from portal.auth import service
from portal.auth.deps import OptionalTeam
from portal.auth.schemas import LoginRequest, LoginResponse
from portal.core.cookies import session_data, set_session_cookie
from portal.core.db import SessionDep
from portal.core.security import SESSION_COOKIE, SessionSigner
from portal.teams.schemas import TeamPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    logins: service.LoginsDep,
) -> LoginResponse:
    """Exchange email + API token for a session cookie (for browser-like clients)."""
    team = await logins.login(session, body.email, body.api_token, service.client_ip(request))
    data = SessionSigner.new_login(team.id, team.session_epoch)
    set_session_cookie(request, response, data)
    return LoginResponse(team=TeamPublic.model_validate(team), csrf_token=data.csrf)


@router.post("/logout", status_code=204)
async def logout(
    request: Request, session: SessionDep, team: OptionalTeam, logins: service.LoginsDep
) -> Response:
    await logins.logout(session, team, session_data(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response
