"""Outermost ASGI middleware: request id, security headers, metrics, access log, and a
last-resort 500 that never shows a stack trace."""

from __future__ import annotations

import html
import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.core import metrics
from portal.core.errors import INTERNAL_ERROR_MESSAGE, error_payload
from portal.core.i18n import current_language, language_for, set_language
from portal.core.i18n import gettext as _
from portal.core.logging import client_ip_var, redact, request_id_var, team_id_var

logger = logging.getLogger("portal.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (/docs) sets inline styles; its scripts are still only our own files.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)


def _header(scope: Scope, name: bytes) -> bytes:
    """The request header `name` (lowercase, as ASGI gives them); the last if repeated."""
    found = b""
    for key, value in scope.get("headers") or ():
        if key == name:
            found = value
    return found


def _wants_json(scope: Scope) -> bool:
    if scope.get("path", "").startswith(("/api/", "/llm/")):
        return True
    return "text/html" not in _header(scope, b"accept").decode("latin-1")


def _internal_error_body(scope: Scope) -> bytes:
    # The request's language was set inside this middleware and is gone by now: read it
    # again from the request (cookie, Accept-Language), as LanguageMiddleware did.
    set_language(
        language_for(
            scope.get("path", ""),
            _header(scope, b"cookie").decode("latin-1"),
            _header(scope, b"accept-language").decode("latin-1"),
            "en",
        )
    )
    if _wants_json(scope):
        return json.dumps(error_payload("internal_error", str(INTERNAL_ERROR_MESSAGE))).encode()
    # A plain page that needs no template or database: those may be what failed.
    title = html.escape(_("Something went wrong"))
    return (
        f"<!doctype html><html lang='{current_language()}'><head><meta charset='utf-8'>"
        f"<title>{title}</title><link rel='stylesheet' href='/static/app.css'>"
        f"</head><body><main><section class='card narrow'><h1>{title}</h1>"
        f"<p>{html.escape(str(INTERNAL_ERROR_MESSAGE))}</p><p class='muted'>"
        f"{html.escape(_('Request id:'))} <code>{html.escape(request_id_var.get() or '')}</code></p>"
        f"<p><a href='/'>{html.escape(_('Back to the start page'))}</a></p>"
        "</section></main></body></html>"
    ).encode()


def _internal_error_start(scope: Scope, length: int) -> Message:
    content_type = b"application/json" if _wants_json(scope) else b"text/html; charset=utf-8"
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", content_type), (b"content-length", str(length).encode())],
    }


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


PROJECTOR_PATH = "/leaderboard/projector"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, projector_frame_ancestors: str | None = None) -> None:
        self.app = app
        # The security headers, built once per kind of path rather than per response.
        # The projector view may be embedded (a venue's signage page) only where allowed.
        strict = {
            b"x-content-type-options": b"nosniff",
            b"referrer-policy": b"same-origin",
            b"x-frame-options": b"DENY",
            b"content-security-policy": STRICT_CSP.encode(),
            # Pages carry tokens and private data: no browser or proxy caching unless
            # a route opts in (the leaderboard's ETag polling does).
            b"cache-control": b"no-store",
        }
        static = {name: value for name, value in strict.items() if name != b"cache-control"}
        self._security_headers = {
            "/docs": tuple({**strict, b"content-security-policy": DOCS_CSP.encode()}.items()),
            "/static/": tuple(static.items()),
            "": tuple(strict.items()),
        }
        if projector_frame_ancestors:
            # CSP frame-ancestors decides; X-Frame-Options cannot name origins.
            projector = {
                name: value for name, value in strict.items() if name != b"x-frame-options"
            }
            projector[b"content-security-policy"] = STRICT_CSP.replace(
                "frame-ancestors 'none'", f"frame-ancestors {projector_frame_ancestors}"
            ).encode()
            self._security_headers[PROJECTOR_PATH] = tuple(projector.items())

    def _security_headers_for(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        kind = "/static/" if path.startswith("/static/") else path
        return self._security_headers.get(kind) or self._security_headers[""]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request_id_var.set(request_id)
        team_id_var.set(None)
        client = scope.get("client")
        client_ip_var.set(client[0] if client else None)
        path = scope.get("path", "")
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        request_id_header = (b"x-request-id", request_id.encode())
        security_headers = self._security_headers_for(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append(request_id_header)
                headers.extend(item for item in security_headers if item[0] not in names)
                message["headers"] = headers
            await send(message)

        metrics.HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Never leak a stack trace: log it with the request id, answer with the id.
            logger.exception("unhandled error", extra={"path": path})
            if status_holder["started"]:
                raise
            body = _internal_error_body(scope)
            await send_with_headers(_internal_error_start(scope, len(body)))
            await send({"type": "http.response.body", "body": body})
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            status = status_holder["status"]
            metrics.observe_request(scope["method"], route, status, elapsed)
            # Unchanged-board polls (304) come every 2 s from every open screen: counted
            # in the metrics, not written to the log one line each.
            if (
                route not in metrics.QUIET_ROUTES
                and status != 304
                and logger.isEnabledFor(logging.INFO)
            ):
                query = scope.get("query_string", b"").decode("latin-1")
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": redact(path + ("?" + query if query else "")),
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client_ip": client_ip_var.get(),
                    },
                )
