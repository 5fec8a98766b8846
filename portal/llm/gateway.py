"""The OpenAI-compatible LLM gateway: authenticate, hold the team to its limit, forward.

The hot path is kept short on purpose: one indexed query for the caller, one Lua call
for the limit, one pooled upstream request, and a log entry appended to a buffer that a
background task writes (usage_log.py). Errors use OpenAI's shape, so the standard
clients raise their usual exceptions (RateLimitError, AuthenticationError, ...).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Unpack

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.auth.deps import request_api_token
from portal.core.bodylimit import PayloadTooLarge
from portal.core.config import Settings
from portal.core.errors import error_responses
from portal.core.logging import request_id_var, team_id_var
from portal.core.security import hash_token
from portal.llm import run_tokens
from portal.llm.ratelimit import RateDecision, RequestsPerMinute
from portal.llm.upstream import UpstreamTransport
from portal.llm.usage_log import TokenUsage, UsageEntry, UsageRecorder

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

router = APIRouter(prefix="/llm/v1", tags=["llm gateway"], responses=GATEWAY_ERRORS)

# The body is read raw (forwarded byte for byte); this documents what it must contain.
CHAT_REQUEST_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "properties": {
                        "model": {"type": "string", "minLength": 1, "example": "echo"},
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["role", "content"],
                                "properties": {
                                    "role": {
                                        "type": "string",
                                        "enum": ["system", "user", "assistant"],
                                    },
                                    "content": {"type": "string"},
                                },
                            },
                        },
                        "stream": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


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


@dataclass(frozen=True)
class Caller:
    team_id: int
    requests_per_minute: int
    source: str = "dev"
    batch_submission_id: int | None = None


_CALLER_COLUMNS = """
    SELECT team.id, team.is_active,
           COALESCE(rate_limit.requests_per_minute, :default_rpm) AS requests_per_minute
    FROM team LEFT JOIN llm_usage_rate_limit AS rate_limit ON rate_limit.team_id = team.id
"""
_CALLER_BY_TOKEN = sa.text(_CALLER_COLUMNS + " WHERE team.token_hash = :token_hash")
_CALLER_BY_ID = sa.text(_CALLER_COLUMNS + " WHERE team.id = :team_id")

TEAM_CACHE_SIZE = 10_000
_INVALID_KEY = "Incorrect API key. Use your team's API token, or the run's OPENAI_API_KEY."


class Gateway:
    """Everything the gateway routes share, built once per process in the app lifespan."""

    def __init__(self, settings: Settings, engine: AsyncEngine, redis: Redis) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.limiter = RequestsPerMinute(redis)
        self._team_cache: dict[tuple[str, object], tuple[float, Any]] = {}
        self.recorder = UsageRecorder(engine, settings.llm_usage_flush_seconds)
        self.transport = UpstreamTransport(
            httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        headers = {"content-type": "application/json"}
        if settings.llm_upstream_key:
            headers["authorization"] = f"Bearer {settings.llm_upstream_key}"
        self.client = httpx.AsyncClient(
            base_url=settings.llm_upstream_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                connect=settings.llm_connect_timeout_seconds,
                read=settings.llm_read_timeout_seconds,
                write=settings.llm_read_timeout_seconds,
                pool=settings.llm_connect_timeout_seconds,
            ),
            transport=self.transport,
        )
        # What every forwarded request shares, taken from the client once: building
        # a request through the client (URL merging, header merging) cost 0.17 ms a call.
        self._upstream_urls = {
            path: self.client.base_url.join(path) for path in ("chat/completions", "models")
        }
        self._upstream_extensions = {"timeout": self.client.timeout.as_dict()}

    async def start(self) -> None:
        self.recorder.start()

    async def close(self) -> None:
        await self.client.aclose()
        await self.recorder.stop()

    async def upstream(
        self, method: str, path: str, *, stream: bool = False, **content: Any
    ) -> httpx.Response:
        """One call to the model server, on the client's pooled transport.

        Not through `client.build_request`/`client.send`: the client's cookie jar would
        carry one team's upstream cookies (a load balancer's, say) into the next team's
        call. Skipping that machinery also saves about 0.5 ms of CPU per call.
        """
        request = httpx.Request(
            method,
            self._upstream_urls[path],
            headers=self.client.headers,
            extensions=self._upstream_extensions,
            **content,
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def caller(self, request: Request) -> Caller:
        token = request_api_token(request)
        if not token:
            raise GatewayError(
                401,
                "Missing API key. Send 'Authorization: Bearer <your team token>'.",
                code="invalid_api_key",
            )
        grant = None
        try:
            if run_tokens.is_run_token(token):
                # Never cached: a run's token must stop working the moment the run ends.
                grant = await run_tokens.resolve(self.redis, token)
                if grant is None:
                    raise GatewayError(
                        401,
                        "This evaluation token has expired: the run it belonged to ended.",
                        code="invalid_api_key",
                    )
                row = await self._team_row(("id", grant.team_id))
            else:
                row = await self._team_row(("token", hash_token(token)))
        except (DBAPIError, RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        if row is None or not row.is_active:
            raise GatewayError(401, _INVALID_KEY, code="invalid_api_key")
        team_id_var.set(row.id)
        if grant is not None:
            return Caller(row.id, row.requests_per_minute, "eval", grant.batch_submission_id)
        return Caller(row.id, row.requests_per_minute)

    async def _team_row(self, key: tuple[str, object]) -> sa.Row[Any] | None:
        """The team behind a token hash or id, active flag and limit, briefly cached.

        The lookup is the largest cost of a call after the upstream itself, so each
        process keeps answers for PORTAL_LLM_AUTH_CACHE_SECONDS: a deactivation, token
        rotation or limit change reaches every process within that time.
        """
        now = time.monotonic()
        cached = self._team_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        kind, value = key
        query = _CALLER_BY_ID if kind == "id" else _CALLER_BY_TOKEN
        params = {"team_id" if kind == "id" else "token_hash": value}
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(query, {**params, "default_rpm": self.settings.llm_rpm})
            ).first()
        ttl = self.settings.llm_auth_cache_seconds
        if ttl > 0:
            if len(self._team_cache) >= TEAM_CACHE_SIZE:
                self._team_cache.clear()  # crude but bounded: a burst of new tokens
            self._team_cache[key] = (now + ttl, row)
        return row

    async def decide(self, caller: Caller, *, consume: bool) -> RateDecision:
        try:
            if consume:
                return await self.limiter.hit(caller.team_id, caller.requests_per_minute)
            return await self.limiter.peek(caller.team_id, caller.requests_per_minute)
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def log(
        self,
        caller: Caller,
        model: str,
        status_code: int,
        started: float,
        *,
        refused: bool = False,
        **usage: Unpack[TokenUsage],
    ) -> None:
        outcome = "refused" if refused else ("allowed" if status_code < 400 else "failed")
        self.recorder.record(
            UsageEntry(
                team_id=caller.team_id,
                model=model,
                status_code=status_code,
                outcome=outcome,
                latency_ms=(time.perf_counter() - started) * 1000,
                source=caller.source,
                batch_submission_id=caller.batch_submission_id,
                request_id=request_id_var.get(),
                **usage,
            )
        )


def _unavailable(exc: Exception) -> GatewayError:
    logger.warning("llm gateway: database or cache unavailable: %s", type(exc).__name__)
    return GatewayError(
        503,
        "The gateway cannot reach its database or cache right now. Retry shortly.",
        type="server_error",
        code="service_unavailable",
        headers={"Retry-After": "5"},
    )


def _upstream_failure(exc: httpx.HTTPError) -> GatewayError:
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


def _usage_tokens(usage: Any) -> TokenUsage:
    if not isinstance(usage, dict):
        return {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
    }


async def _chat_request(request: Request) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = await request.body()
    except PayloadTooLarge as exc:
        raise GatewayError(413, f"The request body is over {exc.limit_bytes} bytes.") from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(400, f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise GatewayError(400, "The body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise GatewayError(400, "'model' is required: a model name string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(
            400, "'messages' is required: a non-empty list of messages.", param="messages"
        )
    return raw, body


def gateway_of(request: Request) -> Gateway:
    return request.app.state.llm_gateway


@router.post(
    "/chat/completions",
    summary="Chat completion (OpenAI-compatible)",
    openapi_extra=CHAT_REQUEST_SCHEMA,
    responses={
        200: {
            "description": "The completion: JSON, or server-sent events with stream: true",
            "content": {"application/json": {}, "text/event-stream": {}},
        }
    },
)
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter()
    gateway = gateway_of(request)
    try:
        caller = await gateway.caller(request)
    except GatewayError as error:
        return error.response()
    try:
        raw, body = await _chat_request(request)
    except GatewayError as error:
        # A malformed call costs nothing from the budget but is still logged.
        gateway.log(caller, "", error.status_code, started)
        return error.response()
    model = body["model"]
    try:
        decision = await gateway.decide(caller, consume=True)
    except GatewayError as error:
        gateway.log(caller, model, error.status_code, started)
        return error.response()
    limit_headers = decision.headers()
    if not decision.allowed:
        gateway.log(caller, model, 429, started, refused=True)
        return GatewayError(
            429,
            f"Rate limit reached: {decision.limit} requests per minute for your team. "
            f"Retry in {decision.retry_after_seconds} s.",
            type="requests",
            code="rate_limit_exceeded",
            headers={**limit_headers, "Retry-After": str(decision.retry_after_seconds)},
        ).response()
    if body.get("stream") is True:
        return await _forward_stream(gateway, caller, body, limit_headers, started)
    return await _forward_json(gateway, caller, model, raw, limit_headers, started)


async def _forward_json(
    gateway: Gateway,
    caller: Caller,
    model: str,
    raw: bytes,
    limit_headers: dict[str, str],
    started: float,
) -> Response:
    try:
        upstream = await gateway.upstream("POST", "chat/completions", content=raw)
    except httpx.HTTPError as exc:
        error = _upstream_failure(exc)
        gateway.log(caller, model, error.status_code, started)
        error.headers.update(limit_headers)
        return error.response()
    usage: TokenUsage = {}
    if upstream.is_success:
        try:
            usage = _usage_tokens(json.loads(upstream.content).get("usage"))
        except (ValueError, AttributeError):
            usage = {}
    gateway.log(caller, model, upstream.status_code, started, **usage)
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers=limit_headers,
    )


async def _forward_stream(
    gateway: Gateway,
    caller: Caller,
    body: dict[str, Any],
    limit_headers: dict[str, str],
    started: float,
) -> Response:
    model = body["model"]
    # Ask upstream for the usage chunk even when the client did not, so streamed calls
    # are logged with their real token counts; the client only sees it if it asked.
    client_options = body.get("stream_options")
    client_wants_usage = isinstance(client_options, dict) and bool(
        client_options.get("include_usage")
    )
    options = client_options if isinstance(client_options, dict) else {}
    upstream_body = {**body, "stream_options": {**options, "include_usage": True}}
    try:
        upstream = await gateway.upstream(
            "POST", "chat/completions", json=upstream_body, stream=True
        )
    except httpx.HTTPError as exc:
        error = _upstream_failure(exc)
        gateway.log(caller, model, error.status_code, started)
        error.headers.update(limit_headers)
        return error.response()
    if not upstream.is_success:
        content = await upstream.aread()
        await upstream.aclose()
        gateway.log(caller, model, upstream.status_code, started)
        return Response(
            content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "application/json"),
            headers=limit_headers,
        )

    async def relay() -> AsyncIterator[bytes]:
        usage: TokenUsage = {}
        status_code = 200
        event: list[str] = []
        try:
            async for line in upstream.aiter_lines():
                if line:
                    event.append(line)
                    continue
                if not event:
                    continue
                text, event = "\n".join(event), []
                found, keep = _inspect_event(text, client_wants_usage)
                usage = found or usage
                if keep:
                    yield (text + "\n\n").encode()
            if event:
                yield ("\n".join(event) + "\n\n").encode()
        except httpx.HTTPError as exc:
            status_code = _upstream_failure(exc).status_code
            logger.warning("llm gateway: upstream stream broke: %s", exc)
        finally:
            await upstream.aclose()
            gateway.log(caller, model, status_code, started, **usage)

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={**limit_headers, "cache-control": "no-cache"},
    )


def _inspect_event(text: str, client_wants_usage: bool) -> tuple[TokenUsage, bool]:
    """(token usage if this event carries it, whether to pass the event on)."""
    if '"usage"' not in text or not text.startswith("data:"):
        return {}, True
    try:
        chunk = json.loads(text[len("data:") :])
    except ValueError:
        return {}, True
    if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
        return {}, True
    usage_only = not chunk.get("choices")
    return _usage_tokens(chunk["usage"]), client_wants_usage or not usage_only


@router.get("/models", summary="Models the gateway serves (OpenAI-compatible)")
async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    try:
        caller = await gateway.caller(request)
        limit_headers = (await gateway.decide(caller, consume=False)).headers()
    except GatewayError as error:
        return error.response()
    try:
        upstream = await gateway.upstream("GET", "models")
    except httpx.HTTPError as exc:
        failure = _upstream_failure(exc)
        failure.headers.update(limit_headers)
        return failure.response()
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers=limit_headers,
    )
