"""What a kit is: the organizer's task, replaceable by PORTAL_EVAL_KIT=module.path.

A kit module defines:
  NAME                      short name shown on batch pages
  INPUT_FILE, ANSWER_FILE   file names inside the sandbox's working directory
  COMMAND                   argv run in the sandbox (the submission is solution.py)
  generate(seed) -> bytes   the task input for a seed (deterministic)
  score(seed, input, answer) -> Score, or raise InvalidAnswer(reason)
  FAILED_RUN_SCORE          what a failed run counts as in a mean (default 0.0)
The scorer runs in the worker, never in the sandbox: nothing the submission prints can
set its score. The answer is the submission's, so it may be anything: read JSON answers
with `read_json_answer`, which refuses what would choke the parser. Any exception the
scorer raises counts against the answer (invalid answer), never against the worker.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


class InvalidAnswer(Exception):
    """The answer file is missing, malformed or wrong; the message says why."""


@dataclass(frozen=True)
class Score:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


# Far above what a sensible answer needs, far below what hurts the worker.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
MAX_ANSWER_DEPTH = 64
MAX_NUMBER_DIGITS = 100

# A bracket, or a JSON string (escapes included) whose brackets do not count. The
# string's pattern is the unrolled `"(normal* (escape normal*)*)"?`: it never fails
# once it has started, so an unterminated string is consumed once, not rescanned from
# every quote (which made a crafted answer take hours).
_BRACKET_OR_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def read_json_answer(
    answer: bytes,
    name: str,
    *,
    max_bytes: int = MAX_ANSWER_BYTES,
    max_depth: int = MAX_ANSWER_DEPTH,
    max_number_digits: int = MAX_NUMBER_DIGITS,
) -> Any:
    """Parse an answer file as JSON within bounds, or raise InvalidAnswer saying which.

    Python's parser recurses once per nesting level and converts digits to an int in
    quadratic time (refusing past 4,300 digits), so a small hostile file could crash or
    stall the scorer; the limits are checked before or while parsing.
    """
    if len(answer) > max_bytes:
        raise InvalidAnswer(f"{name} is {len(answer)} bytes; the limit is {max_bytes}.")
    try:
        text = answer.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidAnswer(
            f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded)."
        ) from exc
    depth = 0
    for token in _BRACKET_OR_STRING.finditer(text):
        bracket = token.group()
        if bracket.startswith('"'):
            continue
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise InvalidAnswer(
                f"{name} is nested more than {max_depth} levels deep "
                "(lists or objects inside each other)."
            )

    def number(kind: type) -> Any:
        def parse(digits: str) -> Any:
            if len(digits) > max_number_digits:
                raise InvalidAnswer(
                    f"{name} has a number {len(digits)} characters long; "
                    f"the limit is {max_number_digits}."
                )
            value = kind(digits)
            if not math.isfinite(value):
                raise InvalidAnswer(f"{name} has a number too large for a float: {digits}.")
            return value

        return parse

    def refuse_constant(constant: str) -> Any:
        raise InvalidAnswer(f"{name} contains {constant}, which is not a JSON number.")

    try:
        return json.loads(
            text,
            parse_int=number(int),
            parse_float=number(float),
            parse_constant=refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc


REQUIRED = ("NAME", "INPUT_FILE", "ANSWER_FILE", "COMMAND", "generate", "score")


def load_kit(path: str) -> ModuleType:
    try:
        kit = importlib.import_module(path)
    except ImportError as exc:
        raise RuntimeError(f"PORTAL_EVAL_KIT={path!r} cannot be imported: {exc}") from exc
    missing = [name for name in REQUIRED if not hasattr(kit, name)]
    if missing:
        raise RuntimeError(f"kit {path!r} lacks {', '.join(missing)}")
    return kit


def failed_run_score(kit: ModuleType) -> float:
    return float(getattr(kit, "FAILED_RUN_SCORE", 0.0))
