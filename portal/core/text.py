"""Text from outside, checked once at the boundary.

PostgreSQL text cannot hold NUL, and psycopg cannot encode a lone UTF-16 surrogate
(JSON's "\\ud800"), so either one reaching a query was a 500. Every schema field, form
field and query parameter that takes a string is one of these types instead of `str`:
such input is refused with a 422 that names the field and the character to remove.

- `FreeText`: anything storable; newlines, tabs and any script stay (a note, a search).
- `NameText`: one line shown to other people (a team or batch name, an email, a choice):
  also no control or invisible format characters (Unicode Cc, Cf), so a name cannot
  carry a terminal escape or a right-to-left override that reverses what follows it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator

# Checked before the field's own length limit: a regular expression scans even a long
# value quickly, and the body-size limit and the server's line limit bound it anyway.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf"})


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
        raise ValueError("must not contain the NUL character (U+0000); remove it")
    raise ValueError(
        f"contains {describe_character(character)}, half of a UTF-16 surrogate pair and "
        "not a character on its own; send the text as valid Unicode"
    )


def _refuse_controls(value: Any) -> Any:
    value = _refuse_unstorable(value)
    # isprintable() is False for every Cc and Cf character: the fast path for most names.
    if not isinstance(value, str) or value.isprintable():
        return value
    for character in value:
        if unicodedata.category(character) in _CONTROL_CATEGORIES:
            raise ValueError(
                f"must not contain the control character {describe_character(character)}; remove it"
            )
    return value


FreeText = Annotated[str, BeforeValidator(_refuse_unstorable)]
NameText = Annotated[str, BeforeValidator(_refuse_controls)]
