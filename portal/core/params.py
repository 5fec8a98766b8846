"""Query parameters as browsers send them.

An HTML GET form sends every field it has, so a field left empty arrives as `name=`; the
pages' own polling URLs are built the same way. That is the visitor not choosing, not a
malformed value: an optional parameter treats it exactly like one that was left out.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from portal.core.pagination import MAX_ROW_ID


def blank_is_absent(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
# The bounds sit on the number, not the union: None (left out) has no bounds to check.
OptionalRowId = Annotated[RowId | None, BeforeValidator(blank_is_absent)]


def whole_number(text: str) -> int | None:
    """A form field's non-negative whole number, or None when it is not one.

    Only ASCII digits count: str.isdigit() is also true for '²' or '٣', which int()
    then refuses (a 500) or reads as a number nobody typed on purpose.
    """
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


# 100,000 or 100 000 or 100_000: digits in groups of three, as the portal shows numbers.
_GROUPED_DIGITS = re.compile(r"[0-9]{1,3}(?:([,_ \u202f\u00a0])[0-9]{3})(?:\1[0-9]{3})*")


def grouped_whole_number(text: str) -> int | None:
    """`whole_number`, also taking the digit groups the portal's pages show (a limit
    copied from its placeholder). Only whole groups of three count: '1,5' is not 15."""
    text = text.strip()
    if _GROUPED_DIGITS.fullmatch(text):
        text = re.sub(r"[^0-9]", "", text)
    return whole_number(text)
