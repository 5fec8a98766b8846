"""The gateway's failures, in OpenAI's error shape so the official clients raise their
usual exceptions (AuthenticationError, RateLimitError, ...)."""

from __future__ import annotations

import logging

import httpx
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from portal.core.errors import error_responses
from portal.core.text import shorten, storable_text
from portal.llm.budgets import Ask, BudgetState

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
        404: "A model the team may not call (code model_not_found), or one the upstream lacks",
        413: "The request body is over the size limit",
        429: "Over one of the team's budgets (type requests, tokens or parallel): see "
        "Retry-After and x-ratelimit-*",
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


def model_not_allowed(model: str, allowed: tuple[str, ...]) -> GatewayError:
    """OpenAI's answer for a model the key may not use."""
    choice = ", ".join(allowed) if allowed else "none (ask the organizers)"
    # Echoed back as sent, so made encodable (a lone surrogate cannot be) and short.
    shown = shorten(storable_text(model), 200)
    return GatewayError(
        404,
        f"The model '{shown}' does not exist or your team may not use it. "
        f"Models your team may call: {choice}.",
        param="model",
        code="model_not_found",
    )


def over_budget(state: BudgetState, ask: Ask, timezone: str) -> GatewayError:
    """The 429 for a refused call: OpenAI's shape, `type` the budget's kind, its own
    `code`, and the headers and Retry-After that say when there is room again."""
    b = state.budgets
    wait = state.retry_after_seconds
    reserves = (
        f"this call reserves {ask.total} tokens ({ask.completion} for the answer, up to "
        f"{ask.prompt} for the prompt)"
    )

    def too_large(limit: int, per: str) -> str:
        # No wait would let it in: say what to change instead.
        return (
            f"Request too large: {reserves}, more than your team's {limit} tokens per "
            f"{per}. Lower max_tokens or shorten the prompt."
        )

    if state.refusal == "requests":
        code = "rate_limit_exceeded"
        message = (
            f"Rate limit reached: {b.requests_per_minute} requests per minute for your team. "
            f"Retry in {wait} s."
        )
    elif state.refusal == "tokens_minute":
        code = "tokens_per_minute_exceeded"
        if ask.total > b.tokens_per_minute:
            message = too_large(b.tokens_per_minute, "minute")
        else:
            message = (
                f"Token budget reached: {state.minute_tokens} of your team's "
                f"{b.tokens_per_minute} tokens per minute are used or reserved and "
                f"{reserves}. Retry in {wait} s, or lower max_tokens."
            )
    elif state.refusal == "tokens_day":
        code = "tokens_per_day_exceeded"
        if ask.total > b.tokens_per_day:
            message = too_large(b.tokens_per_day, "day")
        else:
            message = (
                f"Daily token budget reached: {state.day_tokens} of your team's "
                f"{b.tokens_per_day} tokens today are used or reserved and {reserves}. "
                f"The day's budget starts again at midnight ({timezone}), in {wait} s."
            )
    else:
        code = "parallel_requests_exceeded"
        message = (
            f"Too many calls at once: your team may have {b.max_parallel} in flight. "
            "Retry when one of them has finished."
        )
    return GatewayError(
        429,
        message,
        type=str(state.kind),
        code=code,
        headers={**state.headers(), "Retry-After": str(wait)},
    )
