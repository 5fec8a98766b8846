"""Text from outside (request fields, a gateway call, a submission's output) made safe
to store and to show.

PostgreSQL's text and jsonb refuse NUL, and psycopg cannot encode a lone UTF-16
surrogate (which JSON's "\\ud800" escape produces) as UTF-8: either one fails the whole
statement it is in. Terminal control sequences in a log can rewrite what an admin's
terminal or a browser shows. `storable_text` is the least that makes a string storable
(for values kept as sent, such as a model name); `safe_text` also strips control
sequences, for every log, reason and scorer detail a submission produced.
"""

from __future__ import annotations

import math
import re
from typing import Any

# ANSI escape sequences: CSI (colours, cursor moves), OSC (window titles, hyperlinks,
# ended by BEL or ST), and the two-byte ESC forms. Both 7-bit (ESC [) and 8-bit (\x9b)
# introducers.
_ESCAPE_SEQUENCE = re.compile(
    r"""
    (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]          # CSI ... final byte
    | (?:\x1b\]|\x9d) .{0,512}? (?:\x07|\x1b\\|\x9c)  # OSC ... BEL or ST (bounded)
    | \x1b [ -/]* [0-~]                          # ESC, intermediates, final byte
    """,
    re.VERBOSE | re.DOTALL,
)
# A Python str holds a surrogate only when it is unpaired: decoders join valid pairs.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Every other C0 and C1 control character (NUL included) and DEL, except tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def storable_text(value: str, max_chars: int | None = None) -> str:
    """`value` without NUL characters, lone surrogates replaced by U+FFFD, capped."""
    text = _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    return text if max_chars is None else text[:max_chars]


def safe_text(raw: bytes | str) -> str:
    """Printable text: invalid UTF-8 replaced, NUL and control sequences removed,
    carriage returns turned into newlines. Idempotent: safe text comes back unchanged."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else storable_text(raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, saying so when some were cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 25)] + f" [... {len(text) - limit + 25} more]"


def safe_json(value: Any) -> Any:
    """A copy of `value` that jsonb accepts: safe strings (keys too), finite numbers;
    anything JSON has no type for becomes its safe text."""
    if isinstance(value, dict):
        return {safe_text(str(key)): safe_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(item) for item in value]
    if isinstance(value, str):
        return safe_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return safe_text(str(value))
