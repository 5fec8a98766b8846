"""Each board rendered once per version, however many screens poll it.

The ETag names everything a rendered board depends on (board version, phase, the
competition's settings, which board, admin or not, page, size, search). A poll whose
If-None-Match matches answers 304 from Redis reads alone; a poll with an older ETag gets
the body rendered for the current one from a small in-process LRU, so a hundred pollers
that each saw a different version cost one render, not a hundred.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from portal.core.htmx import VARY_HTMX
from portal.core.i18n import current_language

# Boards x pages x searches actually polled at one version: a few dozen at most.
CAPACITY = 128
# The body differs for admins (their tabs, their boards): caches must keep both.
VARY = f"{VARY_HTMX}, Cookie, Authorization, Accept-Language"


def etag(version: int, *parts: object) -> str:
    # The reader's language is part of every body (words, dates), so of every tag.
    described = repr((current_language(), *parts)).encode()
    digest = hashlib.sha1(described).hexdigest()[:16]  # noqa: S324 (not security)
    return f'W/"lb{version}-{digest}"'


def cache_headers(tag: str) -> dict[str, str]:
    # no-cache (not no-store): browsers keep the copy and revalidate it with the ETag.
    return {"ETag": tag, "Cache-Control": "no-cache", "Vary": VARY}


def not_modified(request: Request, tag: str) -> Response | None:
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=cache_headers(tag))
    return None


class RenderCache:
    """Rendered bodies by ETag, least recently used dropped first. Concurrent misses
    on one ETag wait for the first render instead of each rendering it again."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._rendering: dict[str, asyncio.Lock] = {}

    def _hit(self, tag: str) -> bytes | None:
        body = self._bodies.get(tag)
        if body is not None:
            self._bodies.move_to_end(tag)
        return body

    async def get(self, tag: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        if (body := self._hit(tag)) is not None:
            return body
        lock = self._rendering.setdefault(tag, asyncio.Lock())
        try:
            async with lock:
                if (body := self._hit(tag)) is not None:
                    return body
                body = await render()
                self._bodies[tag] = body
                while len(self._bodies) > self.capacity:
                    self._bodies.popitem(last=False)
                return body
        finally:
            # The waiters hold the lock already; later requests find the body.
            if self._rendering.get(tag) is lock and not lock.locked():
                del self._rendering[tag]

    def clear(self) -> None:
        self._bodies.clear()
