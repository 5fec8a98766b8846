"""One error type for the whole portal, rendered as JSON for the API and HTML for pages.

JSON shape (DESIGN.md): {"error": {"code", "message", "details"}, "request_id"}.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import escape
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal.core.htmx import is_htmx, login_redirect, retarget
from portal.core.i18n import gettext as _
from portal.core.i18n import lazy_gettext
from portal.core.logging import request_id_var
from portal.core.templating import render_error_page

logger = logging.getLogger(__name__)


class PortalError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.details = details
        self.headers = headers or {}


class NotFound(PortalError):
    status_code = 404
    code = "not_found"


class Unauthorized(PortalError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PortalError):
    status_code = 403
    code = "forbidden"


class Conflict(PortalError):
    status_code = 409
    code = "conflict"


class TooManyRequests(PortalError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(PortalError):
    status_code = 503
    code = "service_unavailable"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every JSON API error: {"error": {"code", "message", "details"}, "request_id"}."""

    error: ErrorDetail
    request_id: str | None = None


def error_responses(
    model: type[BaseModel], descriptions: dict[int, str]
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses an operation can answer, all in `model`."""
    return {
        status: {"model": model, "description": description}
        for status, description in descriptions.items()
    }


# Documented on every API operation, so clients (and the schema fuzzer) know the shape.
API_ERROR_RESPONSES = error_responses(
    ErrorResponse,
    {
        400: "The request cannot be understood",
        401: "Missing or invalid API token",
        403: "Not allowed for this team, or the CSRF token is missing",
        404: "No such resource (or not yours)",
        409: "Conflicts with the current state",
        413: "The body is over the size limit",
        422: "Invalid input: each field and what to fix",
        429: "Rate limited: see Retry-After",
        503: "A service the portal needs is unavailable: retry later",
    },
)


class LoginRequired(Exception):
    """A page needs a logged-in team (or an admin): redirect to the login page."""


# A database or Redis that cannot be reached: temporary, answered 503 with Retry-After.
OUTAGES = (RedisError, OperationalError, InterfaceError, ConnectionError, TimeoutError)


def _http_phrase(status_code: int) -> str | None:
    """A sentence for the statuses Starlette answers by itself (no route, wrong method)."""
    phrases = {
        404: _("There is no page or resource at this address."),
        405: _("This address does not answer that method."),
    }
    return phrases.get(status_code)


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def wants_json(request: Request) -> bool:
    path = request.url.path
    # /metrics is read by machines (Prometheus, curl), whatever they say they accept.
    if path.startswith(("/api/", "/llm/")) or path == "/metrics":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_payload(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details},
        "request_id": request_id_var.get(),
    }


INTERNAL_ERROR_MESSAGE = lazy_gettext(
    "Something went wrong on our side. Quote the request id if you report it."
)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            error_payload(code, message, details), status_code=status_code, headers=headers
        )
    if is_htmx(request):
        # An HTMX request that failed before its handler could answer (CSRF, 413, ...):
        # show the reason in the page's error banner instead of swapping in a whole page.
        return HTMLResponse(
            f'<p role="alert">{escape(message)}</p>',
            status_code=status_code,
            headers={**(headers or {}), **retarget("#global-error")},
        )
    return render_error_page(request, status_code, message, headers=headers)


def validation_message(error: Mapping[str, Any]) -> str:
    """What to fix, from one pydantic error, in words a person reads."""
    context = error.get("ctx") or {}
    if error.get("type") in ("too_long", "too_short") and isinstance(error.get("input"), str):
        # A length limit on a checked text type (portal.core.text) runs after the check,
        # where pydantic no longer knows it is text and speaks of "items".
        if error["type"] == "too_long":
            return _(
                "must have at most %(limit)s characters (it has %(length)s)",
                limit=context.get("max_length"),
                length=len(error["input"]),
            )
        return _(
            "must have at least %(limit)s characters (it has %(length)s)",
            limit=context.get("min_length"),
            length=len(error["input"]),
        )
    return str(error.get("msg", _("is invalid"))).removeprefix("Value error, ")


def validation_summary(exc: ValidationError, *, with_field: bool = True) -> str:
    """One readable line from a pydantic ValidationError: 'email: enter an email ...'."""
    parts = []
    for error in exc.errors():
        message = validation_message(error)
        field = ".".join(str(part) for part in error.get("loc", ())) or "input"
        parts.append(f"{field}: {message}" if with_field else message)
    return "; ".join(parts)


def _describe_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    described = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        described.append(
            {"field": ".".join(location) or "body", "message": validation_message(error)}
        )
    return described


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PortalError)
    async def _portal_error(request: Request, exc: PortalError) -> Response:
        return error_response(
            request, exc.status_code, exc.code, exc.message, exc.details, exc.headers
        )

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = _describe_validation_errors(exc)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in details)
        return error_response(
            request,
            422,
            "validation_error",
            _("Invalid input: %(summary)s", summary=summary),
            details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        # Starlette's own phrases ("Not Found") say it in the reader's language instead.
        if message == HTTPStatus(exc.status_code).phrase:
            message = _http_phrase(exc.status_code) or message
        return error_response(
            request, exc.status_code, code, message, headers=getattr(exc, "headers", None)
        )

    async def _dependency_down(request: Request, exc: Exception) -> Response:
        # A database or Redis outage is temporary: say so (503), not "internal error".
        logger.warning("dependency unavailable: %s", type(exc).__name__)
        return error_response(
            request,
            503,
            "service_unavailable",
            _("The portal cannot reach its database or cache right now. Try again shortly."),
            headers={"Retry-After": "5"},
        )

    for outage in OUTAGES:
        app.add_exception_handler(outage, _dependency_down)
