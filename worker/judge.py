"""Turn what the sandbox saw into a status and a reason a participant can act on.

Only the worker judges runs, so the rules live here, beside the sandbox and the kits
they read; the portal only stores the verdict (`runs.Outcome`).
"""

from __future__ import annotations

import signal
from types import ModuleType

from portal.core.text import exception_summary
from portal.evaluation import accounting
from portal.evaluation.models import RunStatus
from portal.evaluation.runs import Outcome
from worker.kits.base import InvalidAnswer
from worker.sandbox.base import SandboxLimits, SandboxResult

LAST_LINES = 8


def _last_lines(log: str, count: int = LAST_LINES) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def judge(
    kit: ModuleType, seed: int, input_bytes: bytes, result: SandboxResult, limits: SandboxLimits
) -> Outcome:
    # First: a full /work explains what follows it (a crash on the failed write, a loop
    # retrying it until the deadline, or the memory cap, which the files count towards).
    if result.disk_exceeded:
        return Outcome(
            RunStatus.disk_limit,
            f"Disk limit exceeded: the program wrote more than {limits.work_mib} MiB "
            f"(or {limits.work_inodes} files) in /work.",
        )
    if result.timed_out:
        return Outcome(
            RunStatus.timeout,
            f"Timed out: still running after {limits.timeout_seconds:g} s, the limit.",
        )
    if result.memory_exceeded:
        return Outcome(
            RunStatus.memory_limit,
            f"Memory limit exceeded: the program used more than {limits.memory_mib} MiB.",
        )
    if result.exit_signal is not None or result.exit_code not in (0, None):
        tail = _last_lines(result.log)
        if result.exit_signal is not None:
            # Not "exit code 139" (the shell's 128 + 11) or -11 (Python's returncode):
            # the signal's name says what happened (SIGSEGV: a crash in native code).
            ended = accounting.ending(result.exit_code, result.exit_signal)
            reason = f"{ended[0].upper()}{ended[1:]}."
        else:
            reason = f"Exited with code {result.exit_code}."
        if result.exit_code == 128 + signal.SIGXFSZ or result.exit_signal == signal.SIGXFSZ:
            reason += " (a file grew past the size limit)"
        return Outcome(
            RunStatus.failed, reason + (accounting.LOG_TAIL_INTRO + tail if tail else "")
        )
    if result.answer_too_large:
        return Outcome(
            RunStatus.invalid_answer,
            f"Invalid answer: {kit.ANSWER_FILE} is larger than {limits.answer_cap_bytes} bytes.",
        )
    if result.answer is None:
        return Outcome(
            RunStatus.invalid_answer,
            f"Invalid answer: the program finished but wrote no {kit.ANSWER_FILE}.",
        )
    try:
        score = kit.score(seed, input_bytes, result.answer)
    except InvalidAnswer as exc:
        return Outcome(RunStatus.invalid_answer, f"Invalid answer: {exc}")
    except Exception as exc:
        # The scorer is trusted but the answer is not: whatever the answer makes the
        # scorer trip over (a huge number, deep nesting, a wrong type) is the answer's
        # fault, a result with a reason, never a worker crash or a retry.
        return Outcome(
            RunStatus.invalid_answer,
            f"Invalid answer: the scorer could not read {kit.ANSWER_FILE} "
            f"({exception_summary(exc)}).",
        )
    return Outcome(RunStatus.scored, None, score.value, dict(score.details))
