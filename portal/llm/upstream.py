"""A lean keep-alive HTTP/1.1 transport for the gateway's httpx.AsyncClient.

The gateway forwards every call through one pooled `httpx.AsyncClient`. Its default
transport (httpcore on anyio, parsing with the pure-Python h11) spent about 1.3 ms of
CPU per call on this project's 2-core machines, more than everything else the gateway
does together. This transport speaks the same httpx interface (requests, streamed
responses, timeouts and error types stay httpx's) but writes each request in one call
and parses answers with httptools, the C parser uvicorn itself uses.

What it does, and deliberately no more: HTTP/1.1 to the few upstream origins a gateway
talks to, TLS when the URL is https, a bounded pool of kept-alive connections, and one
retry when a reused idle connection turns out to have been closed by the server before
it answered (the race every keep-alive client has; a fresh connection is never retried).
Not supported, on purpose: HTTP/2, proxies (HTTP_PROXY is not read; the upstream is
dialled directly) and client certificates. https is verified against the system's
trust store.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import httptools
import httpx

Origin = tuple[str, str, int]
READ_SIZE = 64 * 1024


class _ClosedBeforeAnswer(Exception):
    """The server closed the connection before any byte of an answer."""


class _Answer:
    """httptools callbacks for one response, collected for the transport."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.chunks: deque[bytes] = deque()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the message is done the parser resets and always says no.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def usable(self, expiry: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < expiry
        )

    def close(self) -> None:
        self.writer.close()


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeout = request.extensions.get("timeout") or {}
    return {key: timeout.get(key) for key in ("connect", "read", "write", "pool")}


class UpstreamTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        self._max_connections = limits.max_connections or 100
        self._max_idle = limits.max_keepalive_connections or self._max_connections
        self._expiry = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._ssl_context = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = _timeouts(request)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        try:
            async with asyncio.timeout(timeouts["pool"]):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free upstream connection", request=request) from exc
        try:
            message = _request_head(request) + await _request_body(request)
            origin = _origin(request.url)
            connection, answer = await self._send(origin, message, timeouts, request)
        except BaseException:
            self._slots.release()
            raise
        body = _Body(self, origin, connection, answer, timeouts["read"], request)
        return httpx.Response(
            answer.parser.get_status_code(),
            headers=answer.headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _send(
        self,
        origin: Origin,
        message: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> tuple[_Connection, _Answer]:
        connection = self._idle_connection(origin)
        if connection is not None:
            try:
                return connection, await _exchange(connection, message, timeouts, request)
            except _ClosedBeforeAnswer:
                # The server closed it while idle, before reading the request: nothing
                # was processed, so sending again on a fresh connection is safe.
                connection.close()
            except BaseException:
                connection.close()  # timed out, cancelled or garbled: never reuse it
                raise
        connection = await self._connect(origin, timeouts["connect"], request)
        try:
            return connection, await _exchange(connection, message, timeouts, request)
        except _ClosedBeforeAnswer as exc:
            connection.close()
            raise httpx.RemoteProtocolError(
                "the model server closed the connection without answering", request=request
            ) from exc
        except BaseException:
            connection.close()
            raise

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if connection.usable(self._expiry):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: Origin, connect_seconds: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
        try:
            async with asyncio.timeout(connect_seconds):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, limit=READ_SIZE * 4
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"connecting to {host}:{port} timed out", request=request
            ) from exc
        except OSError as exc:
            raise httpx.ConnectError(
                f"cannot connect to {host}:{port}: {exc}", request=request
            ) from exc
        return _Connection(reader, writer)

    def _finished(self, origin: Origin, connection: _Connection, reusable: bool) -> None:
        assert self._slots is not None
        self._slots.release()
        idle = self._idle.setdefault(origin, deque())
        if reusable and len(idle) < self._max_idle:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


def _origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


def _request_head(request: httpx.Request) -> bytes:
    lines = [request.method.encode() + b" " + request.url.raw_path + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _request_body(request: httpx.Request) -> bytes:
    if isinstance(request.stream, httpx.ByteStream):
        return b"".join(request.stream)  # its one chunk, also when built with stream=
    assert isinstance(request.stream, httpx.AsyncByteStream)  # built by an async client
    return b"".join([chunk async for chunk in request.stream])


async def _exchange(
    connection: _Connection,
    message: bytes,
    timeouts: dict[str, float | None],
    request: httpx.Request,
) -> _Answer:
    """Send the request and read until its headers are in."""
    try:
        async with asyncio.timeout(timeouts["write"]):
            connection.writer.write(message)
            await connection.writer.drain()
    except TimeoutError as exc:
        connection.close()
        raise httpx.WriteTimeout("sending to the model server timed out", request=request) from exc
    except OSError as exc:
        raise _ClosedBeforeAnswer() from exc
    answer = _Answer()
    received = False
    while not answer.headers_done:
        data = await _read(connection, timeouts["read"], request)
        if not data:
            if received:
                connection.close()
                raise httpx.RemoteProtocolError(
                    "the model server closed the connection mid-answer", request=request
                )
            raise _ClosedBeforeAnswer()
        received = True
        _feed(answer, data, connection, request)
    return answer


async def _read(
    connection: _Connection, read_seconds: float | None, request: httpx.Request
) -> bytes:
    try:
        async with asyncio.timeout(read_seconds):
            return await connection.reader.read(READ_SIZE)
    except TimeoutError as exc:
        connection.close()
        raise httpx.ReadTimeout("the model server did not answer in time", request=request) from exc
    except OSError:
        return b""  # reset or TLS failure: the caller treats it as the connection closing


def _feed(
    answer: _Answer,
    data: bytes,
    connection: _Connection,
    request: httpx.Request,
) -> None:
    try:
        answer.parser.feed_data(data)
    except httptools.HttpParserError as exc:
        connection.close()
        raise httpx.RemoteProtocolError(
            f"the model server sent a malformed answer: {exc}", request=request
        ) from exc


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool at its end."""

    def __init__(
        self,
        transport: UpstreamTransport,
        origin: Origin,
        connection: _Connection,
        answer: _Answer,
        read_timeout: float | None,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._answer = answer
        self._read_timeout = read_timeout
        self._request = request
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        answer = self._answer
        try:
            while True:
                while answer.chunks:
                    yield answer.chunks.popleft()
                if answer.complete:
                    break
                data = await _read(self._connection, self._read_timeout, self._request)
                if not data:
                    if _ends_at_close(answer):
                        break  # a body delimited by the server closing the connection
                    self._connection.close()
                    raise httpx.RemoteProtocolError(
                        "the model server closed the connection mid-answer",
                        request=self._request,
                    )
                _feed(answer, data, self._connection, self._request)
        finally:
            if not answer.complete or answer.chunks:
                # Abandoned or broken mid-body: the connection's state is unknown.
                self._connection.close()
        self._release(reusable=answer.complete and answer.keep_alive)

    async def aclose(self) -> None:
        if not self._released:
            self._connection.close()
            self._release(reusable=False)

    def _release(self, reusable: bool) -> None:
        if not self._released:
            self._released = True
            self._transport._finished(self._origin, self._connection, reusable)


def _ends_at_close(answer: _Answer) -> bool:
    names = {name.lower() for name, _ in answer.headers}
    return b"content-length" not in names and b"transfer-encoding" not in names
