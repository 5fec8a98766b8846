"""The portal's cookies: the signed session (who is logged in, the CSRF token) and the
one-time flash message that survives a POST-redirect-GET."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeSerializer

from portal.core.security import SESSION_COOKIE, SessionData, SessionSigner

FLASH_COOKIE = "portal_flash"


def cookies_secure(request: Request) -> bool:
    # Behind a TLS proxy the scheme comes from X-Forwarded-Proto (uvicorn proxy_headers).
    return request.app.state.settings.cookies_secure or request.url.scheme == "https"


def session_data(request: Request) -> SessionData | None:
    """The verified session cookie (cached per request), or None."""
    if not hasattr(request.state, "session_data"):
        signer: SessionSigner = request.app.state.signer
        request.state.session_data = signer.loads(request.cookies.get(SESSION_COOKIE))
    return request.state.session_data


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


def pop_flash(request: Request) -> list[tuple[str, str]]:
    """The flash message this request carries (the caller deletes the cookie)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        kind, message = _flash_serializer(request).loads(raw)
    except (BadSignature, ValueError, TypeError):
        return []
    return [(str(kind), str(message))]
