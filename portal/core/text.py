"""Text from outside (request fields, a submission's output) made safe to store.

PostgreSQL refuses a NUL in a text value, and psycopg cannot encode a lone UTF-16
surrogate (which JSON's "\\ud800" escape produces) as UTF-8: either one fails the whole
statement it is in. Everything stored from an untrusted string goes through here.
"""

from __future__ import annotations

import re

# A Python str holds a surrogate only when it is unpaired: decoders join valid pairs.
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(value: str, max_chars: int | None = None) -> str:
    """`value` without NUL characters, lone surrogates replaced by U+FFFD, capped."""
    text = _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    return text if max_chars is None else text[:max_chars]
