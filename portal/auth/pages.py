from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from portal.auth import service
from portal.auth.deps import OptionalTeam, verify_csrf
from portal.core.cookies import cookies_secure, flash, session_data, set_session_cookie
from portal.core.db import SessionDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.htmx import NEXT_MAX_CHARS, redirect
from portal.core.i18n import LANGUAGE_COOKIE, LANGUAGES
from portal.core.i18n import gettext as _
from portal.core.security import SESSION_COOKIE, SessionSigner
from portal.core.templating import render
from portal.core.text import FreeText, NameText
from portal.teams.models import Team

router = APIRouter(include_in_schema=False)


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
    logins: service.LoginsDep,
    email: Annotated[NameText, Form(max_length=254)] = "",
    api_token: Annotated[NameText, Form(max_length=200)] = "",
    next: Annotated[FreeText, Form(max_length=NEXT_MAX_CHARS)] = "",
) -> Response:
    await verify_csrf(request)
    if not email.strip() or not api_token.strip():
        return render(
            request,
            "login.html",
            {
                "error": _("Enter both your email and your API token."),
                "email": email,
                "next": next,
            },
            status_code=400,
        )
    team = await form_action(
        session, logins.login, session, email, api_token, service.client_ip(request)
    )
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
    flash(request, response, _("Logged in as %(team)s.", team=team.name), "success")
    return response


@router.post("/logout")
async def logout_submit(
    request: Request, session: SessionDep, team: OptionalTeam, logins: service.LoginsDep
) -> Response:
    await verify_csrf(request)
    outcome = await form_action(session, logins.logout, session, team, session_data(request))
    response = redirect(request, "/login")
    # The cookie goes either way: leaving was asked for, and a forgotten cookie is harmless.
    response.delete_cookie(SESSION_COOKIE)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
    else:
        flash(request, response, _("You are logged out."), "info")
    return response


# A year: the choice is the reader's, not the session's, and outlives logging out.
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600


@router.post("/language")
async def language_submit(
    request: Request,
    language: Annotated[NameText, Form(max_length=8)] = "",
    # Any length: a page's address (a long search) may be longer than a login's `next`;
    # safe_next refuses what it cannot come back to, and the path alone is tried next.
    next: FreeText = Form(""),
) -> Response:
    """The header's language switch: remembered in a cookie, then back to the page."""
    await verify_csrf(request)
    if language not in LANGUAGES:
        choices = ", ".join(LANGUAGES)
        raise PortalError(
            _("Pick one of the languages: %(choices)s.", choices=choices),
            code="invalid_language",
            status_code=422,
        )
    back = safe_next(next) or safe_next(urlsplit(next).path) or "/"
    response = redirect(request, back)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=LANGUAGE_COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookies_secure(request),
        path="/",
    )
    return response
