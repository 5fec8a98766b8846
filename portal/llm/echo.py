"""A stand-in OpenAI-compatible model server for development and tests.

Model `echo` answers "echo: <last user message>", deterministically, with real token
counts (words and punctuation marks, plus 3 per message as OpenAI counts them), cut at
max_completion_tokens (else max_tokens) as a real model stops there, as JSON or as a
server-sent event stream with the usage chunk when asked. A user message that
starts with "/sleep N" makes it wait N seconds first, so timeouts can be tested.
Model `echo-latest` is an alias answered by `echo`, as real providers answer a moving
name ("gpt-4o") with the dated model behind it: its answers name `echo`.

It is a bare ASGI app, no framework, so that measuring the gateway against it measures
the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from portal.core.background_server import BackgroundServer

MODEL = "echo"
# Each model name served, and the model that answers it (named in the answer).
MODELS = {MODEL: MODEL, "echo-latest": MODEL}
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SLEEP = re.compile(r"^/sleep\s+(\d+(?:\.\d+)?)")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _last_user_text(messages: list[Any]) -> str:
    return next(
        (
            _message_text(m)
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )


def _answer_limit(body: dict[str, Any]) -> int | None:
    """The most tokens the answer may have: max_completion_tokens, else max_tokens, as
    OpenAI reads them (a real model stops there, and so must the stand-in, or every
    answer would overspend its reservation)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def reply_for(
    messages: list[Any], max_tokens: int | None = None
) -> tuple[str, dict[str, int], str]:
    """The answer, its usage and its finish_reason ("length" when cut at max_tokens)."""
    completion = f"echo: {_last_user_text(messages)}"
    finish_reason = "stop"
    if max_tokens is not None:
        tokens = list(itertools.islice(_TOKEN.finditer(completion), max_tokens + 1))
        if len(tokens) > max_tokens:
            completion, finish_reason = completion[: tokens[max_tokens - 1].end()], "length"
    prompt_tokens = sum(count_tokens(_message_text(m)) + 3 for m in messages)
    completion_tokens = count_tokens(completion)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return completion, usage, finish_reason


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(message: str, code: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"].rstrip("/")
    if scope["method"] == "GET" and path.endswith("/models"):
        await _send_json(
            send,
            200,
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "portal"}
                    for name in MODELS
                ],
            },
        )
        return
    if scope["method"] != "POST" or not path.endswith("/chat/completions"):
        await _send_json(send, 404, _error(f"No route {scope['path']}", "not_found"))
        return
    try:
        body = json.loads(await _read_body(receive))
        messages = body["messages"]
        model = body["model"]
    except (ValueError, KeyError, TypeError):
        await _send_json(send, 400, _error("Send a JSON body with model and messages.", None))
        return
    answered_by = MODELS.get(model) if isinstance(model, str) else None
    if answered_by is None:
        names = "', '".join(MODELS)
        await _send_json(
            send,
            404,
            _error(f"The model '{model}' does not exist; use '{names}'.", "model_not_found"),
        )
        return
    completion, usage, finish_reason = reply_for(messages, _answer_limit(body))
    sleep = _SLEEP.match(_last_user_text(messages))
    if sleep:
        await asyncio.sleep(float(sleep.group(1)))
    created = int(time.time())
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await _stream(send, answered_by, completion, usage, finish_reason, created, include_usage)
        return
    await _send_json(
        send,
        200,
        {
            "id": f"chatcmpl-echo-{created}",
            "object": "chat.completion",
            "created": created,
            "model": answered_by,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        },
    )


async def _stream(
    send: Send,
    model: str,
    completion: str,
    usage: dict[str, int],
    finish_reason: str,
    created: int,
    include_usage: bool,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    base = {
        "id": f"chatcmpl-echo-{created}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    async def event(payload: dict | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        await send(
            {"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True}
        )

    pieces = re.findall(r"\S+\s*", completion)
    for index, piece in enumerate(pieces):
        delta = {"content": piece} if index else {"role": "assistant", "content": piece}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if include_usage:
            chunk["usage"] = None
        await event(chunk)
    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
    if include_usage:
        final["usage"] = None
    await event(final)
    if include_usage:
        await event({**base, "choices": [], "usage": usage})
    await event("[DONE]")
    await send({"type": "http.response.body", "body": b""})


class EchoServer(BackgroundServer):
    """The echo model on a loopback port, in a background thread (dev and tests)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(echo_app, host, port, name="llm-echo")

    @property
    def url(self) -> str:
        return self.address + "/v1"
