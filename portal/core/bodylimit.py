"""A hard cap on request bodies, enforced while they stream in.

Every body (uploads, forms, JSON) passes through here: a Content-Length over the cap is
refused before anything is read, and a body without one is refused as soon as more than
the cap has arrived. So an oversized upload is never read whole, into memory or to disk.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.core.i18n import gettext as _

# Room for multipart boundaries, part headers and the small fields beside the file.
FORM_OVERHEAD_BYTES = 16 * 1024


class PayloadTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing lets it through instead of a 400."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, too_large_message(limit_bytes))
        self.limit_bytes = limit_bytes


def too_large_message(limit_bytes: int) -> str:
    return _(
        "The file is larger than the %(limit)s limit (PORTAL_MAX_UPLOAD_BYTES). Upload a "
        "smaller file.",
        limit=format_size(limit_bytes),
    )


def format_size(size: int) -> str:
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return _("%(size)s bytes", size=size)


def too_large(limit_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(limit_bytes)


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_file_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + FORM_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        declared_too_large = declared.isdigit() and int(declared) > self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            # Raised inside the handler that reads the body, so the app's error
            # handlers answer (JSON for the API, a page for forms) and roll back.
            if declared_too_large:
                raise too_large(self.max_file_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise too_large(self.max_file_bytes)
            return message

        await self.app(scope, limited_receive, send)
