"""The gateway's routes: OpenAI's /chat/completions (JSON or streamed) and /models."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from portal.core import metrics
from portal.core.bodylimit import PayloadTooLarge
from portal.llm.gateway.errors import GATEWAY_ERRORS, GatewayError, upstream_failure
from portal.llm.gateway.service import Caller, Gateway, call_outcome
from portal.llm.usage_log import TokenUsage

logger = logging.getLogger(__name__)

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


def get_gateway(request: Request) -> Gateway:
    """The app's one Gateway (its caller cache, rate limit, upstream client, usage log)."""
    return request.app.state.llm_gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


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
async def chat_completions(request: Request, gateway: GatewayDep) -> Response:
    started = time.perf_counter()
    try:
        caller = await gateway.caller(request)
    except GatewayError as error:
        # No team to log it for; counted all the same.
        metrics.count_llm_call(call_outcome(error.status_code))
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
        error = upstream_failure(exc)
        gateway.log(caller, model, error.status_code, started, upstream=True)
        error.headers.update(limit_headers)
        return error.response()
    usage: TokenUsage = {}
    if upstream.is_success:
        try:
            usage = _usage_tokens(json.loads(upstream.content).get("usage"))
        except (ValueError, AttributeError):
            usage = {}
    gateway.log(caller, model, upstream.status_code, started, upstream=True, **usage)
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
        error = upstream_failure(exc)
        gateway.log(caller, model, error.status_code, started, upstream=True)
        error.headers.update(limit_headers)
        return error.response()
    if not upstream.is_success:
        content = await upstream.aread()
        await upstream.aclose()
        gateway.log(caller, model, upstream.status_code, started, upstream=True)
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
            status_code = upstream_failure(exc).status_code
            logger.warning("llm gateway: upstream stream broke: %s", exc)
        finally:
            await upstream.aclose()
            gateway.log(caller, model, status_code, started, upstream=True, **usage)

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
async def list_models(request: Request, gateway: GatewayDep) -> Response:
    try:
        caller = await gateway.caller(request)
        limit_headers = (await gateway.decide(caller, consume=False)).headers()
    except GatewayError as error:
        return error.response()
    try:
        upstream = await gateway.upstream("GET", "models")
    except httpx.HTTPError as exc:
        failure = upstream_failure(exc)
        failure.headers.update(limit_headers)
        return failure.response()
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers=limit_headers,
    )
