"""The gateway's failures, in OpenAI's error shape so the official clients raise their
usual exceptions (AuthenticationError, RateLimitError, ...)."""

from __future__ import annotations

import logging

import httpx
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from portal.core.errors import error_responses

logger = logging.getLogger(__name__)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error shape, so the official clients raise their usual exceptions."""

    error: OpenAIErrorDetail


GATEWAY_ERRORS = error_responses(
    OpenAIError,
    {
        400: "Malformed request (not JSON, no model or messages)",
        401: "Missing, wrong or expired API key",
        404: "Unknown model (from the upstream)",
        413: "The request body is over the size limit",
        429: "Over the team's requests per minute: see Retry-After and x-ratelimit-*",
        502: "The model server is unreachable",
        503: "The gateway's database or cache is unavailable",
        504: "The model did not answer in time",
    },
)


class GatewayError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


INVALID_KEY = "Incorrect API key. Use your team's API token, or the run's OPENAI_API_KEY."


def unavailable(exc: Exception) -> GatewayError:
    logger.warning("llm gateway: database or cache unavailable: %s", type(exc).__name__)
    return GatewayError(
        503,
        "The gateway cannot reach its database or cache right now. Retry shortly.",
        type="server_error",
        code="service_unavailable",
        headers={"Retry-After": "5"},
    )


def upstream_failure(exc: httpx.HTTPError) -> GatewayError:
    if isinstance(exc, httpx.TimeoutException):
        return GatewayError(
            504,
            "The model did not answer in time. Retry, or ask for fewer tokens.",
            type="server_error",
            code="upstream_timeout",
        )
    return GatewayError(
        502,
        "The model server is unreachable right now. Retry shortly.",
        type="server_error",
        code="upstream_unavailable",
    )
