"""Fallback for `portal dev` without a Docker engine. NOT A SANDBOX.

A subprocess with resource limits (CPU time, address space, processes, file size), a
wall-clock deadline, its own temporary directory and a scrubbed environment. It keeps a
buggy solution from hurting a laptop; it does not stop a hostile one from reading files
or using the network. `portal serve` and `portal worker` refuse it unless
PORTAL_EVAL_ALLOW_PROCESS_RUNNER=true.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from worker.sandbox.base import Heartbeat, SandboxLimits, SandboxResult, cap_log

logger = logging.getLogger(__name__)
WARNING = "process runner: evaluations are NOT sandboxed (no Docker engine reachable)"


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
                process = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=environment,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=apply_limits,
                )
                timed_out = aborted = False
                while process.poll() is None:
                    if time.monotonic() - started >= limits.timeout_seconds:
                        timed_out = True
                    elif not heartbeat():
                        aborted = True
                    if timed_out or aborted:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
                        break
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=0.5)
                duration_ms = int((time.monotonic() - started) * 1000)
            with log_path.open("rb") as handle:
                size = log_path.stat().st_size
                raw = (
                    handle.read(limits.log_cap_bytes * 2)
                    if size <= limits.log_cap_bytes * 2
                    else handle.read(limits.log_cap_bytes) + b"\n" + _tail(handle, size, limits)
                )
            log, truncated = cap_log(raw, limits.log_cap_bytes)
            answer_path = Path(workdir, answer_file)
            answer, too_large = None, False
            if not (timed_out or aborted) and answer_path.is_file():
                if answer_path.stat().st_size > limits.answer_cap_bytes:
                    too_large = True
                else:
                    answer = answer_path.read_bytes()
            code = process.returncode
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
