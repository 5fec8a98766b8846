"""A bare keep-alive HTTP/1.1 client for benchmarks.

The measuring client must cost far less than what it measures: httpx's pool spends
milliseconds per call at high concurrency on a 2-core machine, which would drown the
figures of the server under test.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

# uvicorn closes a keep-alive connection after 5 s idle; reopen before that, as browsers
# and HTTP libraries do, instead of writing into a connection the server is closing.
IDLE_REOPEN_SECONDS = 4.0


class Connection:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the kept-alive connection (reopened if the server closed it)."""
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_REOPEN_SECONDS:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head += [f"Content-Length: {len(body)}", "", ""]
        self.writer.write("\r\n".join(head).encode() + body)
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionResetError("the server closed the connection")
            answer_headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                answer_headers[name.strip().lower()] = value.strip()
            length = int(answer_headers.get("content-length", "0"))
            content = await self.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise
        self.last_used = time.monotonic()
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split()[1]), answer_headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file and some text fields; (body, type)."""
    boundary = "portalbenchboundary7d1f"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/x-python\r\n\r\n"
    )
    body = "".join(parts).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
