"""Fallback for `portal dev` without a Docker engine. NOT A SANDBOX.

A subprocess with resource limits (CPU time, address space, processes, file size), a
wall-clock deadline, its own temporary directory and a scrubbed environment, started
through a small go-between (measured.py) that reports what it cost (CPU time, peak
memory, how it ended) as Docker's cgroup does for the real sandbox. It keeps a
buggy solution from hurting a laptop; it does not stop a hostile one from reading files
or using the network. `portal serve` and `portal worker` refuse it unless
PORTAL_EVAL_ALLOW_PROCESS_RUNNER=true.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from worker.sandbox.base import Heartbeat, SandboxLimits, SandboxResult, cap_log

logger = logging.getLogger(__name__)
WARNING = "process runner: evaluations are NOT sandboxed (no Docker engine reachable)"
MEASURED = Path(__file__).with_name("measured.py")
# How long the go-between may take to reap a killed program and report before it is
# killed too (it is ours and only waits: this is a safety net, never normally reached).
KILL_GRACE_SECONDS = 10
# ru_maxrss is in kilobytes on Linux, in bytes on macOS.
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True)
class Cost:
    """What the go-between reported (all None when it could not report)."""

    status: int | None = None  # as a returncode: negative for a signal
    cpu_user_ms: int | None = None
    cpu_system_ms: int | None = None
    peak_memory_bytes: int | None = None


class ProcessRunner:
    name = "process"
    is_sandbox = False

    def ping(self) -> None:
        logger.warning(WARNING)

    # Nothing to find later: processes carry no labels. An orphan of a killed worker is
    # ended by its CPU-time limit (a sleeping one lingers: one more reason this runner
    # is for development only).
    def kill_run_containers(self, run_id: int) -> int:
        return 0

    def remove_leftovers(self, alive_run_ids: set[int]) -> int:
        return 0

    def run(
        self,
        *,
        run_id: int,
        worker_id: str,
        files: dict[str, bytes],
        command: list[str],
        answer_file: str,
        limits: SandboxLimits,
        heartbeat: Heartbeat,
    ) -> SandboxResult:
        with tempfile.TemporaryDirectory(prefix=f"portal-run-{run_id}-") as workdir:
            for name, data in files.items():
                Path(workdir, name).write_bytes(data)
            log_path = Path(workdir, ".output.log")
            argv = [
                sys.executable if command[0] in ("python3", "python") else command[0],
                *command[1:],
            ]
            environment = {
                "PATH": "/usr/bin:/bin",
                "HOME": workdir,
                "TMPDIR": workdir,
                "PYTHONDONTWRITEBYTECODE": "1",
                **limits.environment,
            }

            def apply_limits() -> None:
                os.setsid()
                cpu = int(limits.timeout_seconds) + 1
                memory = limits.memory_mib * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
                resource.setrlimit(
                    resource.RLIMIT_FSIZE, (limits.file_size_cap_bytes, limits.file_size_cap_bytes)
                )
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

            with log_path.open("wb") as log_file:
                started = time.monotonic()
                process, report = _start_measured(
                    argv,
                    cwd=workdir,
                    env=environment,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=apply_limits,
                )
                with report:
                    # The program's own process group: what a timeout kills (the go-between
                    # lives on to reap it and report what it cost).
                    program_group = _started_pid(report.readline()) or process.pid
                    timed_out = aborted = False
                    while process.poll() is None:
                        if time.monotonic() - started >= limits.timeout_seconds:
                            timed_out = True
                        elif not heartbeat():
                            aborted = True
                        if timed_out or aborted:
                            _kill_group(program_group)
                            try:
                                process.wait(timeout=KILL_GRACE_SECONDS)
                            except subprocess.TimeoutExpired:
                                _kill_group(process.pid)
                                process.wait()
                            break
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            process.wait(timeout=0.5)
                    duration_ms = int((time.monotonic() - started) * 1000)
                    cost = _read_cost(report.readline())
            with log_path.open("rb") as handle:
                output_bytes = log_path.stat().st_size  # all it wrote to stdout and stderr
                raw = (
                    handle.read(limits.log_cap_bytes * 2)
                    if output_bytes <= limits.log_cap_bytes * 2
                    else handle.read(limits.log_cap_bytes)
                    + b"\n"
                    + _tail(handle, output_bytes, limits)
                )
            log, truncated = cap_log(raw, limits.log_cap_bytes)
            answer_path = Path(workdir, answer_file)
            answer, too_large = None, False
            if not (timed_out or aborted) and answer_path.is_file():
                if answer_path.stat().st_size > limits.answer_cap_bytes:
                    too_large = True
                else:
                    answer = answer_path.read_bytes()
            # The program's own status, as the go-between saw it; the go-between's when
            # it could not say (it was killed too).
            code = process.returncode if cost.status is None else cost.status
            memory_exceeded = code is not None and code != 0 and "MemoryError" in log
            disk_exceeded = not aborted and _exceeds_work_limits(Path(workdir), log_path, limits)
            return SandboxResult(
                exit_code=code,
                duration_ms=duration_ms,
                log=log,
                answer=answer,
                timed_out=timed_out,
                memory_exceeded=memory_exceeded,
                disk_exceeded=disk_exceeded,
                answer_too_large=too_large,
                aborted=aborted,
                log_truncated=truncated,
                exit_signal=-code if code is not None and code < 0 else None,
                cpu_user_ms=cost.cpu_user_ms,
                cpu_system_ms=cost.cpu_system_ms,
                peak_memory_bytes=cost.peak_memory_bytes,
                output_bytes=output_bytes,
            )


def _exceeds_work_limits(workdir: Path, log_path: Path, limits: SandboxLimits) -> bool:
    """Whether the program left more than Docker's /work would hold (bytes or files).

    This runner cannot stop the writing (its directory is on the host's disk), only report
    it as Docker would, so a solution that would fail there for its files fails here too.
    The output log lives in the directory but is not in /work under Docker.
    """
    byte_cap, inode_cap = limits.work_mib * 1024 * 1024, limits.work_inodes
    used_bytes, used_inodes = 0, 1  # the directory itself is an inode
    for root, directories, files in os.walk(workdir):
        for name in directories + files:
            path = Path(root, name)
            if path == log_path:
                continue
            used_inodes += 1
            used_bytes += path.lstat().st_blocks * 512
            if used_bytes > byte_cap or used_inodes > inode_cap:
                return True  # no need to count the rest of a flood
    return False


def _tail(handle: BinaryIO, size: int, limits: SandboxLimits) -> bytes:
    handle.seek(max(0, size - limits.log_cap_bytes))
    return handle.read(limits.log_cap_bytes)


def _start_measured(argv: list[str], **popen: Any) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    """Start `argv` under the go-between; its report is read from the returned file."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(MEASURED), str(write_fd), *argv],
            pass_fds=(write_fd,),
            **popen,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # ours is closed at once, so the report ends when the go-between does
    return process, os.fdopen(read_fd, "rb")


def _started_pid(line: bytes) -> int | None:
    word, _, pid = line.decode("ascii", "replace").partition(" ")
    return int(pid) if word == "pid" and pid.strip().isdigit() else None


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _read_cost(line: bytes) -> Cost:
    try:
        figures = json.loads(line)
        return Cost(
            status=os.waitstatus_to_exitcode(int(figures["status"])),
            cpu_user_ms=round(float(figures["utime"]) * 1000),
            cpu_system_ms=round(float(figures["stime"]) * 1000),
            peak_memory_bytes=int(figures["maxrss"]) * MAXRSS_UNIT,
        )
    except (ValueError, KeyError, TypeError):
        return Cost()  # the go-between died before reporting: not measured
