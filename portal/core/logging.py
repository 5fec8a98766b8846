"""Structured JSON logs carrying the request id and team id, with secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
team_id_var: ContextVar[int | None] = ContextVar("team_id", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)

# API tokens (pt_...), bearer credentials and token-ish query parameters never reach a log.
_SECRET_PATTERNS = [
    (re.compile(r"pt_[A-Za-z0-9_\-]{8,}"), "pt_[REDACTED]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1[REDACTED]"),
    (
        re.compile(r"(?i)((?:api_?)?token|api_key|password|secret|csrf_token)=([^&\s\"']+)"),
        r"\1=[REDACTED]",
    ),
    (
        re.compile(r"(?i)(\"(?:api_token|token|password|secret)\"\s*:\s*\")[^\"]*"),
        r"\1[REDACTED]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# uvicorn adds "color_message" (the message with ANSI colours); it is noise in JSON.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
            "team_id": team_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class PlainFormatter(logging.Formatter):
    """Human-readable lines for `portal dev`: the message, then its structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        line = super().format(record)
        return redact(f"{line} {extras}" if extras else line)


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_output else PlainFormatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log prints raw paths (with query strings); ours scrubs them.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
