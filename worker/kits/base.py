"""What a kit is: the organizer's task, replaceable by PORTAL_EVAL_KIT=module.path.

A kit module defines:
  NAME                      short name shown on batch pages
  INPUT_FILE, ANSWER_FILE   file names inside the sandbox's working directory
  COMMAND                   argv run in the sandbox (the submission is solution.py)
  generate(seed) -> bytes   the task input for a seed (deterministic)
  score(seed, input, answer) -> Score, or raise InvalidAnswer(reason)
  FAILED_RUN_SCORE          what a failed run counts as in a mean (default 0.0)
The scorer runs in the worker, never in the sandbox: nothing the submission prints can
set its score.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


class InvalidAnswer(Exception):
    """The answer file is missing, malformed or wrong; the message says why."""


@dataclass(frozen=True)
class Score:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


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
