"""The gateway's routes: OpenAI's /chat/completions (JSON or streamed) and /models."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from redis.exceptions import RedisError

from portal.core import metrics
from portal.core.bodylimit import PayloadTooLarge
from portal.core.text import shorten, storable_text
from portal.llm.budgets import Ask, Refusal, Reservation, prompt_estimate
from portal.llm.gateway.deps import GatewayDep
from portal.llm.gateway.errors import (
    GATEWAY_ERRORS,
    GatewayError,
    model_not_allowed,
    over_budget,
    unavailable,
    upstream_failure,
)
from portal.llm.gateway.service import Caller, Gateway, call_outcome
from portal.llm.usage_log import TokenUsage

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/llm/v1", tags=["llm gateway"], responses=GATEWAY_ERRORS)

# Bounds on what a call may ask for, so a reservation is always a sane number.
MAX_TOKENS_ASKED = 10_000_000
MAX_CHOICES = 128
# nginx's status for a call whose handling was stopped before it answered; only logged.
CLIENT_CLOSED = 499
# More than any model reports for one call; the usage log's columns hold up to 2**31 - 1.
MAX_TOKENS_REPORTED = 100_000_000

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
    """The token counts an answer reports; none unless both are whole numbers in range
    (a list, a negative or an infinite count would break the log or lower the team's
    counters: the call then stays charged as reserved)."""
    if not isinstance(usage, dict):
        return {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    if not all(
        isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_TOKENS_REPORTED
        for count in (prompt, completion)
    ):
        return {}
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def _total(usage: TokenUsage) -> int | None:
    """The tokens a call spent, None when the model did not say."""
    if not usage:
        return None
    return usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)


def _answered_model(answer: Any) -> str | None:
    model = answer.get("model") if isinstance(answer, dict) else None
    return model if isinstance(model, str) else None


def _whole_number(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GatewayError(
            400, f"'{name}' must be a whole number from {low} to {high}.", param=name
        )
    return value


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_once_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if a key appears twice in it. The body goes upstream
    byte for byte, and parsers disagree on a repeated key (Python keeps the last, some
    keep the first): the gateway would check one model or max_tokens while the
    upstream acted on the other."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


async def _chat_request(request: Request, default_max_tokens: int) -> tuple[bytes, dict, Ask]:
    try:
        raw = await request.body()
    except PayloadTooLarge as exc:
        raise GatewayError(413, f"The request body is over {exc.limit_bytes} bytes.") from exc
    try:
        body = json.loads(raw, object_pairs_hook=_object_once_per_key)
    except _RepeatedKey as exc:
        shown = shorten(storable_text(exc.key), 60)
        raise GatewayError(
            400, f"The key '{shown}' appears more than once in one object; send it once."
        ) from exc
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
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        # An upstream that reads "true" or 1 as true would stream an answer the gateway
        # reads as JSON, and so can neither log nor settle its tokens.
        raise GatewayError(400, "'stream' must be true or false.", param="stream")
    # Both are checked (the body goes upstream as sent; a bad one would fail there) and
    # the larger is reserved: OpenAI reads the newer name, many compatible servers only
    # max_tokens, so the answer may be as long as either.
    completion = _whole_number(body, "max_completion_tokens", 1, MAX_TOKENS_ASKED)
    legacy = _whole_number(body, "max_tokens", 1, MAX_TOKENS_ASKED)
    if completion is None or (legacy is not None and legacy > completion):
        completion = legacy
    choices = _whole_number(body, "n", 1, MAX_CHOICES) or 1
    ask = Ask(prompt_estimate(len(raw)), (completion or default_max_tokens) * choices)
    return raw, body, ask


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
        raw, body, ask = await _chat_request(request, gateway.settings.llm_default_max_tokens)
    except GatewayError as error:
        # A malformed call costs nothing from the budget but is still logged.
        gateway.log(caller, "", error.status_code, started)
        return error.response()
    model = body["model"]
    budgets = caller.budgets
    if not budgets.allows_model(model):
        gateway.log(caller, model, 404, started, refused=Refusal.model)
        return model_not_allowed(model, budgets.models or ()).response()
    try:
        state = await gateway.take(caller, ask.total)
    except GatewayError as error:
        gateway.log(caller, model, error.status_code, started)
        return error.response()
    if state.reservation is None:
        gateway.log(caller, model, 429, started, refused=state.kind)
        return over_budget(state, ask, gateway.settings.timezone).response()
    call = Call(gateway, caller, model, state.reservation, state.headers(), started)
    # Renewed while the model works, unless the caller hangs up (see gateway/leases.py).
    gateway.leases.hold(call.reservation, request)
    try:
        if body.get("stream") is True:
            return await _forward_stream(call, body)
        return await _forward_json(call, raw)
    except BaseException as exc:
        # Broken off before a response took the call over (an error of ours, or the
        # server stopping): the model may have spent tokens, so they stay as reserved,
        # and the slot is freed rather than renewed for good. Logged all the same.
        await call.settle(None)
        stopped = isinstance(exc, asyncio.CancelledError)
        gateway.log(caller, model, CLIENT_CLOSED if stopped else 500, started)
        raise


class Call:
    """One allowed call: what it holds of the team's budgets until it is settled, once."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        model: str,
        reservation: Reservation,
        limit_headers: dict[str, str],
        started: float,
    ) -> None:
        self.gateway = gateway
        self.caller = caller
        self.model = model
        self.reservation = reservation
        self.limit_headers = limit_headers
        self.started = started
        self.settled = False

    async def settle(self, used_tokens: int | None, *, give_back: bool = False) -> None:
        if not self.settled:
            self.settled = True
            await self.gateway.settle(self.reservation, used_tokens, give_back=give_back)

    def failed(self, error: GatewayError) -> Response:
        self.gateway.log(self.caller, self.model, error.status_code, self.started, upstream=True)
        error.headers.update(self.limit_headers)
        return error.response()


class SettledResponse(Response):
    """A response that settles its call once it is sent (or its sending failed)."""

    def __init__(self, call: Call, used_tokens: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._call = call
        self._used_tokens = used_tokens

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._call.settle(self._used_tokens)


def _as_answered(
    upstream: httpx.Response,
    headers: dict[str, str],
    *,
    content: bytes | None = None,
    settle: tuple[Call, int | None] | None = None,
) -> Response:
    """The upstream's answer passed on (its body, or `content` in its place), with the
    team's budget headers; with `settle`, settling that call once it is sent."""
    answer = {
        "content": upstream.content if content is None else content,
        "status_code": upstream.status_code,
        "media_type": upstream.headers.get("content-type", "application/json"),
        "headers": headers,
    }
    if settle is None:
        return Response(**answer)
    return SettledResponse(*settle, **answer)


def _gives_back(status_code: int) -> bool:
    """An upstream answer that means the call did not happen: a server error or the
    upstream's own rate limit. The team gets its request and tokens back."""
    return status_code >= 500 or status_code == 429


async def _forward_json(call: Call, raw: bytes) -> Response:
    gateway, caller, model, started = call.gateway, call.caller, call.model, call.started
    try:
        upstream = await gateway.upstream("POST", "chat/completions", raw)
    except httpx.HTTPError as exc:
        await call.settle(None, give_back=True)
        return call.failed(upstream_failure(exc))
    if _gives_back(upstream.status_code):
        await call.settle(None, give_back=True)
        gateway.log(caller, model, upstream.status_code, started, upstream=True)
        return _as_answered(upstream, call.limit_headers)
    usage: TokenUsage = {}
    answered = None
    try:
        answer = json.loads(upstream.content)
        usage, answered = _usage_tokens(answer.get("usage")), _answered_model(answer)
    except (ValueError, AttributeError):
        pass
    # A refused call (4xx) that reports no usage spent nothing.
    used = _total(usage) if upstream.is_success or usage else 0
    gateway.log(
        caller,
        model,
        upstream.status_code,
        started,
        upstream=True,
        answered_model=answered,
        **usage,
    )
    return _as_answered(upstream, call.limit_headers, settle=(call, used))


class SettledStreamingResponse(StreamingResponse):
    """A stream that settles its call when it ends, however it ends (the relay settles
    with the real usage first when it gets to; this is the backstop)."""

    def __init__(self, call: Call, content: AsyncGenerator[bytes, None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._call = call
        self._content = content

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that left while a chunk was being sent leaves the relay paused
            # at that chunk; closed now, it ends the call itself (upstream closed, real
            # usage settled, logged) here rather than whenever it is garbage collected.
            await self._content.aclose()
            await self._call.settle(None)


async def _forward_stream(call: Call, body: dict[str, Any]) -> Response:
    gateway, caller, model, started = call.gateway, call.caller, call.model, call.started
    # Ask upstream for the usage chunk even when the client did not, so streamed calls
    # are logged and settled with their real token counts; the client only sees it if
    # it asked.
    client_options = body.get("stream_options")
    client_wants_usage = isinstance(client_options, dict) and bool(
        client_options.get("include_usage")
    )
    options = client_options if isinstance(client_options, dict) else {}
    upstream_body = {**body, "stream_options": {**options, "include_usage": True}}
    try:
        upstream = await gateway.upstream(
            "POST", "chat/completions", _json_bytes(upstream_body), stream=True
        )
    except httpx.HTTPError as exc:
        await call.settle(None, give_back=True)
        return call.failed(upstream_failure(exc))
    # From here on the response notices the caller leaving and ends the stream, which
    # frees the slot; the keeper just renews it.
    gateway.leases.hold(call.reservation)
    if not upstream.is_success:  # read whole by gateway.upstream
        await call.settle(
            None if _gives_back(upstream.status_code) else 0,
            give_back=_gives_back(upstream.status_code),
        )
        gateway.log(caller, model, upstream.status_code, started, upstream=True)
        return _as_answered(upstream, call.limit_headers)

    async def relay() -> AsyncGenerator[bytes, None]:
        usage: TokenUsage = {}
        answered: str | None = None
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
                found, keep, model_named = _inspect_event(
                    text, client_wants_usage, answered is None
                )
                usage = found or usage
                answered = answered or model_named
                if keep:
                    yield (text + "\n\n").encode()
            if event:
                yield ("\n".join(event) + "\n\n").encode()
        except httpx.HTTPError as exc:
            status_code = upstream_failure(exc).status_code
            logger.warning("llm gateway: upstream stream broke: %s", exc)
        finally:
            # A client that leaves makes Starlette cancel the response, and under a
            # cancelled scope every await here would be cancelled again: the upstream
            # left open, the call settled only by the backstop and never logged.
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
                # Broken midway (or left), the model still spent what it streamed:
                # settled as reported or, unreported, as reserved.
                await call.settle(_total(usage))
            gateway.log(
                caller,
                model,
                status_code,
                started,
                upstream=True,
                answered_model=answered,
                **usage,
            )

    return SettledStreamingResponse(
        call,
        relay(),
        media_type="text/event-stream",
        headers={**call.limit_headers, "cache-control": "no-cache"},
    )


def _json_bytes(body: dict[str, Any]) -> bytes:
    """`body` as JSON the way httpx's `json=` encodes it (NaN refused: not JSON)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _inspect_event(
    text: str, client_wants_usage: bool, looking_for_model: bool
) -> tuple[TokenUsage, bool, str | None]:
    """(token usage if this event carries it, whether to pass the event on, the model
    it names if we still look for one)."""
    carries_usage = '"usage"' in text
    if not text.startswith("data:") or not (carries_usage or looking_for_model):
        return {}, True, None
    try:
        chunk = json.loads(text[len("data:") :])
    except ValueError:
        return {}, True, None
    if not isinstance(chunk, dict):
        return {}, True, None
    model = _answered_model(chunk)
    if not isinstance(chunk.get("usage"), dict):
        return {}, True, model
    usage_only = not chunk.get("choices")
    return _usage_tokens(chunk["usage"]), client_wants_usage or not usage_only, model


@router.get("/models", summary="The models the team may call (OpenAI-compatible)")
async def list_models(request: Request, gateway: GatewayDep) -> Response:
    try:
        caller = await gateway.caller(request)
        limit_headers = (await gateway.use(caller.team_id, caller.budgets)).headers()
    except GatewayError as error:
        return error.response()
    except (RedisError, OSError) as exc:
        return unavailable(exc).response()
    try:
        upstream = await gateway.upstream("GET", "models")
    except httpx.HTTPError as exc:
        failure = upstream_failure(exc)
        failure.headers.update(limit_headers)
        return failure.response()
    content = upstream.content
    allowed = caller.budgets.models
    if allowed is not None and upstream.is_success:
        content = _only_models(content, allowed)
    return _as_answered(upstream, limit_headers, content=content)


def _only_models(content: bytes, allowed: tuple[str, ...]) -> bytes:
    """The upstream's model list cut to the team's allowlist (as sent if unreadable)."""
    try:
        listing = json.loads(content)
        listing["data"] = [
            entry
            for entry in listing["data"]
            if isinstance(entry, dict) and entry.get("id") in allowed
        ]
    except (ValueError, KeyError, TypeError):
        return content
    return json.dumps(listing).encode()
