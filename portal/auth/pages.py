from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from portal.auth import service
from portal.auth.deps import OptionalTeam, verify_csrf
from portal.core.db import SessionDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.security import SESSION_COOKIE, SessionSigner
from portal.core.templating import flash, is_htmx, render, set_session_cookie
from portal.core.text import FreeText, NameText
from portal.teams.models import Team

router = APIRouter(include_in_schema=False)
NEXT_MAX_CHARS = 500  # where to go after logging in: a path and query, never longer


def redirect(request: Request, url: str) -> Response:
    """303 for plain forms; HX-Redirect for HTMX so the whole page changes."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def home_for(team: Team) -> str:
    return "/admin/teams" if team.is_admin else "/dashboard"


def safe_next(target: str | None) -> str | None:
    r"""Only a same-site path: "//evil.example", "https://..." or "/\t/evil" are refused."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if len(target) > NEXT_MAX_CHARS:
        return None
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def login_redirect(request: Request) -> Response:
    # Back to the page after logging in; without its query if that makes it too long
    # for the login form, and to the home page if even the path is.
    path, query = request.url.path, request.url.query
    url = "/login"
    for target in (f"{path}?{query}" if query else path, path):
        if len(target) <= NEXT_MAX_CHARS:
            url = f"/login?next={quote(target, safe='')}"
            break
    response = redirect(request, url)
    if getattr(request.state, "viewer", None) is not None:
        flash(request, response, "That page needs an admin account.", "error")
    return response


@router.get("/")
async def index(request: Request, team: OptionalTeam) -> Response:
    return RedirectResponse(home_for(team) if team else "/login", status_code=303)


@router.get("/login")
async def login_page(
    request: Request,
    team: OptionalTeam,
    # Not length-limited here: safe_next drops a target too long to come back to.
    next: FreeText | None = None,
) -> Response:
    return render(request, "login.html", {"next": safe_next(next) or "", "email": ""})


@router.post("/login")
async def login_submit(
    request: Request,
    session: SessionDep,
    email: Annotated[NameText, Form(max_length=254)] = "",
    api_token: Annotated[NameText, Form(max_length=200)] = "",
    next: Annotated[FreeText, Form(max_length=NEXT_MAX_CHARS)] = "",
) -> Response:
    await verify_csrf(request)
    if not email.strip() or not api_token.strip():
        return render(
            request,
            "login.html",
            {"error": "Enter both your email and your API token.", "email": email, "next": next},
            status_code=400,
        )
    team = await form_action(session, service.login, request, session, email, api_token)
    if isinstance(team, PortalError):
        return render(
            request,
            "login.html",
            {"error": team.message, "email": email, "next": next},
            status_code=team.status_code,
            headers=team.headers,
        )
    response = redirect(request, safe_next(next) or home_for(team))
    set_session_cookie(request, response, SessionSigner.new_login(team.id, team.session_epoch))
    flash(request, response, f"Logged in as {team.name}.", "success")
    return response


@router.post("/logout")
async def logout_submit(request: Request, session: SessionDep, team: OptionalTeam) -> Response:
    await verify_csrf(request)
    outcome = await form_action(session, service.logout, request, session, team)
    response = redirect(request, "/login")
    # The cookie goes either way: leaving was asked for, and a forgotten cookie is harmless.
    response.delete_cookie(SESSION_COOKIE)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
    else:
        flash(request, response, "You are logged out.", "info")
    return response
