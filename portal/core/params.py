"""Query parameters as browsers send them.

An HTML GET form sends every field it has, so a field left empty arrives as `name=`; the
pages' own polling URLs are built the same way. That is the visitor not choosing, not a
malformed value: an optional parameter treats it exactly like one that was left out.
"""

from __future__ import annotations

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
