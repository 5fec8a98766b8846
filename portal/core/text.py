"""Text from outside (request fields, a gateway call, a submission's output), checked
or made storable.

PostgreSQL's text and jsonb refuse NUL, and psycopg cannot encode a lone UTF-16
surrogate (which JSON's "\\ud800" escape produces) as UTF-8: either one fails the whole
statement it is in, which was a 500. Two ways out, one per kind of text:

- What a person typed is checked at the boundary and refused with a 422 that names the
  field and the character to remove. Every schema field, form field and query parameter
  that takes a string is one of these types instead of `str`:
  - `FreeText`: anything storable; newlines, tabs and any script stay (a note, a search);
  - `NameText`: one line shown to other people (a team or batch name, an email, a
    choice): also no control or invisible format characters (Unicode Cc, Cf), so a name
    cannot carry a terminal escape or a right-to-left override that reverses what
    follows it.
- What nobody can be asked to fix is made storable instead: `storable_text` for values
  kept as sent (a gateway call's model name); `safe_text`, which also strips terminal
  control sequences, for every log, reason and scorer detail a submission produced.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator

from portal.core.i18n import gettext as _

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
# Checked before the field's own length limit: a regular expression scans even a long
# value quickly, and the body-size limit and the server's line limit bound it anyway.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf"})


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


def exception_summary(exc: BaseException, limit: int = 300) -> str:
    """'ValueError: what it said', shortened and safe: for a reason, never a traceback."""
    return f"{type(exc).__name__}: {shorten(safe_text(str(exc)), limit) or 'no details'}"


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


def describe_character(character: str) -> str:
    """'U+202E (RIGHT-TO-LEFT OVERRIDE)', or just 'U+0007' for an unnamed one."""
    code = f"U+{ord(character):04X}"
    name = unicodedata.name(character, "")
    return f"{code} ({name})" if name else code


def _refuse_unstorable(value: Any) -> Any:
    # Anything but a string is left to the field's own type, which says what it expects.
    if not isinstance(value, str):
        return value
    found = _UNSTORABLE.search(value)
    if found is None:
        return value
    character = found.group()
    if character == "\x00":
        raise ValueError(_("must not contain the NUL character (U+0000); remove it"))
    raise ValueError(
        _(
            "contains %(character)s, half of a UTF-16 surrogate pair and not a character on "
            "its own; send the text as valid Unicode",
            character=describe_character(character),
        )
    )


def _refuse_controls(value: Any) -> Any:
    value = _refuse_unstorable(value)
    # isprintable() is False for every Cc and Cf character: the fast path for most names.
    if not isinstance(value, str) or value.isprintable():
        return value
    for character in value:
        if unicodedata.category(character) in _CONTROL_CATEGORIES:
            raise ValueError(
                _(
                    "must not contain the control character %(character)s; remove it",
                    character=describe_character(character),
                )
            )
    return value


FreeText = Annotated[str, BeforeValidator(_refuse_unstorable)]
NameText = Annotated[str, BeforeValidator(_refuse_controls)]
