"""What every runner takes and gives back, so the worker does not care which one ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from portal.core.text import safe_text

# Called about once a second while the submission runs; False means "stop now" (the
# run was cancelled or another worker took it over).
Heartbeat = Callable[[], bool]


@dataclass(frozen=True)
class SandboxLimits:
    timeout_seconds: float = 20
    memory_mib: int = 512
    cpus: float = 1.0
    pids_limit: int = 64
    tmpfs_mib: int = 64
    # /work (the submission, its input, its answer and anything else it writes) holds at
    # most this many MiB and this many files and directories.
    work_mib: int = 256
    work_inodes: int = 10_000
    log_cap_bytes: int = 64 * 1024
    answer_cap_bytes: int = 1024 * 1024
    # Largest file the submission may write (ulimit fsize), a little above the answer cap
    # so an oversized answer is reported as such rather than as a crash.
    file_size_cap_bytes: int = 8 * 1024 * 1024
    network: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    def shown(self) -> dict[str, float | int]:
        """The limits a team and an admin see beside a run's figures (never the
        environment: it holds the run's LLM token)."""
        return {
            "timeout_seconds": self.timeout_seconds,
            "memory_mib": self.memory_mib,
            "cpus": self.cpus,
            "pids_limit": self.pids_limit,
            "work_mib": self.work_mib,
            "log_cap_bytes": self.log_cap_bytes,
            "answer_cap_bytes": self.answer_cap_bytes,
        }


@dataclass
class SandboxResult:
    exit_code: int | None
    duration_ms: int
    log: str
    answer: bytes | None = None
    timed_out: bool = False
    memory_exceeded: bool = False
    disk_exceeded: bool = False  # /work was full (bytes or files) when the run ended
    answer_too_large: bool = False
    aborted: bool = False  # stopped because the heartbeat said so (cancel / takeover)
    log_truncated: bool = False
    # Accounting, measured outside the program's reach (None: this runner cannot, or the
    # measurement was lost with a run the worker had to kill).
    exit_signal: int | None = None  # the signal that ended it, if one did
    cpu_user_ms: int | None = None
    cpu_system_ms: int | None = None
    peak_memory_bytes: int | None = None
    output_bytes: int | None = None  # everything written to stdout and stderr


class SandboxError(Exception):
    """The runner itself failed (engine down, image missing): infrastructure, retry."""


def cap_log(raw: bytes, cap: int) -> tuple[str, bool]:
    """Keep the start and the end of a long log: the first error and the last words.

    The text is safe to store and show whatever bytes the program wrote (binary, NUL,
    terminal escapes): see portal.core.text.safe_text."""
    if len(raw) <= cap:
        return safe_text(raw), False
    head = raw[: cap // 4]
    tail = raw[-(cap - len(head)) :]
    return kept_log(head, tail, len(raw) - len(head) - len(tail)), True


def kept_log(head: bytes, tail: bytes, omitted: int) -> str:
    """The start and the end of an output, with what was left out between them marked
    (the words portal.evaluation.accounting recognises)."""
    if not omitted:
        return safe_text(head + tail)
    # Cut at the nearest line end: a colour code cut in two would leave its second half
    # ("32m") in the text, which nothing can recognise as an escape any more.
    head_end = len(head) - _bytes_before_line_end(head[::-1])
    tail_start = _bytes_before_line_end(tail, keep_end=False)
    omitted += len(head) - head_end + tail_start
    return (
        safe_text(head[:head_end])
        + f"\n[... {omitted} bytes of output omitted ...]\n"
        + safe_text(tail[tail_start:])
    )


def _bytes_before_line_end(data: bytes, keep_end: bool = True, reach: int = 1024) -> int:
    """How many bytes precede the first line end (and it too, unless `keep_end`), when one
    is that near; 0 for a line longer than `reach`, kept as cut rather than dropped."""
    end = data.find(b"\n", 0, reach)
    return 0 if end < 0 else end if keep_end else end + 1
