"""Jinja pages and HTMX fragments.

A handler renders the whole page; when the request comes from HTMX (`HX-Request`) and
names a block, only that block is rendered (the contact-app / jinja2-fragments idea).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer

from portal.core.logging import request_id_var
from portal.core.migrations import PROJECT_ROOT
from portal.core.security import SESSION_COOKIE, SessionData, SessionSigner

FLASH_COOKIE = "portal_flash"

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))


def _format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _local_time(value: datetime | None, timezone: str) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _file_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 ", " ")
    return f"{size / (1024 * 1024):.1f} MiB".replace(".0 ", " ")


def humanize_duration(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min" if minutes else "in under a minute"


templates.env.filters["datetime"] = _format_time
templates.env.filters["localtime"] = _local_time
templates.env.filters["filesize"] = _file_size
templates.env.filters["tojson_attr"] = lambda value: json.dumps(value)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_fragment(request: Request) -> bool:
    # Boosted requests and history restores (the back button) want the whole page;
    # other HTMX requests want just the block they swap.
    return (
        is_htmx(request)
        and request.headers.get("hx-boosted") != "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def cookies_secure(request: Request) -> bool:
    # Behind a TLS proxy the scheme comes from X-Forwarded-Proto (uvicorn proxy_headers).
    return request.app.state.settings.cookies_secure or request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, data: SessionData) -> None:
    settings = request.app.state.settings
    signer: SessionSigner = request.app.state.signer
    response.set_cookie(
        SESSION_COOKIE,
        signer.dumps(data),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=cookies_secure(request),
        path="/",
    )


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key, salt="portal-flash")


def flash(request: Request, response: Response, message: str, kind: str = "info") -> None:
    """A one-time message shown on the next page (survives the POST-redirect-GET)."""
    response.set_cookie(
        FLASH_COOKIE,
        _flash_serializer(request).dumps([kind, message]),
        max_age=60,
        httponly=True,
        samesite="lax",
        secure=cookies_secure(request),
    )


def _pop_flash(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        kind, message = _flash_serializer(request).loads(raw)
    except (BadSignature, ValueError, TypeError):
        return []
    return [(str(kind), str(message))]


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    from portal.auth.deps import session_data

    session = session_data(request)
    new_session = None
    if session is None:
        # Forms need a CSRF token even before login: issue an anonymous session.
        new_session = request.app.state.signer.new_anonymous()
        request.state.session_data = new_session
        session = new_session
    flashes = _pop_flash(request)
    full_context = {
        "request": request,
        "current_team": getattr(request.state, "viewer", None),
        "csrf_token": session.csrf,
        "flashes": flashes,
        "settings": request.app.state.settings,
        "request_id": request_id_var.get(),
        **(context or {}),
    }
    if block and wants_fragment(request):
        template = templates.env.get_template(name)
        html = "".join(template.blocks[block](template.new_context(full_context)))
        response = HTMLResponse(html, status_code=status_code, headers=headers)
    else:
        response = templates.TemplateResponse(
            request, name, full_context, status_code=status_code, headers=headers
        )
    response.headers["Vary"] = "HX-Request, Cookie"
    if new_session is not None:
        set_session_cookie(request, response, new_session)
    if flashes:
        response.delete_cookie(FLASH_COOKIE)
    return response


def render_error_page(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        status_code=status_code,
        headers=headers,
    )
