"""Run one submission in a fresh, locked-down container.

The container's PID 1 is the runguard (worker/sandbox/runguard.py), passed as text to the
image's Python: it takes the run's files on stdin, runs the kit's command, and when that
ends kills whatever the program left behind and reports, on a stream only it writes,
the exit, the output (capped head and tail), the answer file and what the run cost
according to the container's cgroup. One container, no volumes, no host bind mounts, no
archive copies, no exec and no log file: files go in and the report comes out through
one attached stream of the Docker API, so the worker can itself run in a container that
only has the Docker socket.

The root file system is read-only; /work and /tmp are tmpfs capped in size (and /work in
inodes), charged to the container's memory cap, so a submission can fill neither the
host's disk nor its inode table. The worker keeps its own deadline a little past the
runguard's, kills the container if that passes (then there is no report: a timeout
without figures), and the container is always removed: by the engine as soon as it ends
by itself (auto-remove, so no result waits for that), by the worker otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.volumes import Volume
from docker.types import LogConfig, Ulimit

from portal.core.text import safe_text
from worker.sandbox.base import (
    Heartbeat,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    kept_log,
)
from worker.sandbox.runguard import MARKER

logger = logging.getLogger(__name__)
SANDBOX_UID = 65534
LABEL = "portal.eval"
# Which portal a container belongs to (Settings.deployment_id): run ids repeat across
# deployments and test sessions sharing one engine.
DEPLOYMENT_LABEL = "portal.deployment"
WORKDIR = "/work"
RUNGUARD_SOURCE = (Path(__file__).with_name("runguard.py")).read_text()
# A write that hits the cap fills /work to its last page (write() stores what fits, then
# fails), so "full" is "less than this left"; a little slack for tmpfs rounding.
FULL_BELOW_BYTES = 64 * 1024
# How long past its own deadline the runguard gets to kill, measure and report.
REPORT_GRACE_SECONDS = 5.0


def files_message(files: dict[str, bytes]) -> bytes:
    """The run's files as the runguard reads them from stdin: JSON of base64."""
    return json.dumps(
        {name: base64.b64encode(data).decode() for name, data in files.items()}
    ).encode()


def parse_report(stdout: bytes) -> dict[str, Any] | None:
    """The runguard's report: the last marked line of the stream only it writes."""
    marker = MARKER.encode()
    at = stdout.rfind(marker)
    if at < 0:
        return None
    try:
        report = json.loads(stdout[at + len(marker) :].strip())
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _decoded(text: str | None) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError):
        return b""


def result_from_report(report: dict[str, Any], duration_ms: int) -> SandboxResult:
    head, tail = _decoded(report.get("log_head")), _decoded(report.get("log_tail"))
    omitted = int(report.get("log_omitted") or 0)
    log = kept_log(head, tail, omitted)
    answer = report.get("answer")
    return SandboxResult(
        exit_code=report.get("exit_code"),
        duration_ms=int(report.get("wall_ms", duration_ms)),
        log=log,
        answer=_decoded(answer) if answer is not None else None,
        timed_out=bool(report.get("timed_out")),
        memory_exceeded=bool(report.get("oom_kills")),
        disk_exceeded=bool(report.get("work_full")),
        answer_too_large=bool(report.get("answer_too_large")),
        log_truncated=omitted > 0,
        exit_signal=report.get("exit_signal"),
        cpu_user_ms=report.get("cpu_user_ms"),
        cpu_system_ms=report.get("cpu_system_ms"),
        peak_memory_bytes=report.get("peak_memory_bytes"),
        output_bytes=report.get("output_bytes"),
    )


class AttachedStream:
    """The container's attached stdio: the run's files go in on stdin, and its stdout and
    stderr come back as Docker's multiplexed frames (an 8-byte header: stream, size),
    kept up to `limit` bytes each (the runguard writes one bounded report)."""

    def __init__(self, raw: socket.socket, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.pending = bytearray()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.ended = False

    def send_and_close(self, data: bytes) -> None:
        self.raw.sendall(data)
        self.raw.shutdown(socket.SHUT_WR)  # end of input: stdin_once closes the runguard's

    def read_for(self, seconds: float) -> bool:
        """Read what comes for up to `seconds`; True once the stream has ended."""
        until = time.monotonic() + seconds
        while not self.ended:
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            self.raw.settimeout(remaining)
            try:
                chunk = self.raw.recv(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                self.ended = True
                break
            self.pending += chunk
            self._take_frames()
        return self.ended

    def _take_frames(self) -> None:
        while len(self.pending) >= 8:
            size = int.from_bytes(self.pending[4:8], "big")
            if len(self.pending) < 8 + size:
                return
            target = self.stderr if self.pending[0] == 2 else self.stdout
            if len(target) < self.limit:
                target += self.pending[8 : 8 + size]
            del self.pending[: 8 + size]


class DockerRunner:
    name = "docker"
    is_sandbox = True

    def __init__(
        self,
        image: str,
        client: docker.DockerClient | None = None,
        *,
        deployment: str = "default",
    ) -> None:
        self.image = image
        # Every container and volume carries it; cleanup and kills look only at ours.
        self.deployment = deployment
        try:
            self.client = client or docker.from_env(timeout=60)
        except DockerException as exc:
            raise SandboxError(f"no Docker engine is reachable: {exc}") from exc

    def ping(self) -> None:
        try:
            self.client.ping()
            self.client.images.get(self.image)
        except ImageNotFound as exc:
            raise SandboxError(
                f"evaluation image {self.image!r} is missing; build it with "
                "`portal eval-image build --offline`"
            ) from exc
        except DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc

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
        container = None
        labels = {
            LABEL: "1",
            DEPLOYMENT_LABEL: self.deployment,
            "portal.run_id": str(run_id),
            "portal.worker": worker_id,
        }
        guard_config = {
            "command": command,
            "uid": SANDBOX_UID,
            "gid": SANDBOX_UID,
            "timeout_seconds": limits.timeout_seconds,
            "log_cap_bytes": limits.log_cap_bytes,
            "answer_file": answer_file,
            "answer_cap_bytes": limits.answer_cap_bytes,
            "file_size_cap_bytes": limits.file_size_cap_bytes,
            "full_below_bytes": FULL_BELOW_BYTES,
        }
        # The most of the report's stream kept: it carries the log and the answer in
        # base64, so room for both, twice.
        report_room = 2 * (limits.log_cap_bytes + limits.answer_cap_bytes) + (1 << 20)
        started = time.monotonic()
        ended = False  # the container ended by itself (and so removes itself)
        try:
            container = self.client.containers.create(
                self.image,
                ["python3", "-I", "-S", "-c", RUNGUARD_SOURCE, json.dumps(guard_config)],
                # The runguard starts as root with the three capabilities it needs to
                # run the program as SANDBOX_UID (which has none) and kill what that
                # leaves behind; it is then another user than the program's, whose
                # signals, ptrace and prlimit() cannot reach it.
                user="0:0",
                cap_drop=["ALL"],
                cap_add=["SETUID", "SETGID", "KILL"],
                working_dir="/",
                read_only=True,
                tmpfs={
                    "/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_mib}m",  # noqa: S108
                    WORKDIR: (
                        f"rw,nosuid,nodev,size={limits.work_mib}m,nr_inodes={limits.work_inodes},"
                        f"uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700"
                    ),
                },
                # Files in /tmp and /work are tmpfs pages charged to this container, so
                # this one cap covers the program's memory and its files: a run never
                # holds more than memory_mib of the host's RAM, whatever it does. Settings
                # keep work_mib below it so the disk cap, not this one, stops a writer.
                mem_limit=f"{limits.memory_mib}m",
                memswap_limit=f"{limits.memory_mib}m",
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids_limit,
                security_opt=["no-new-privileges"],
                # The per-file size cap (fsize) the runguard sets on the program alone.
                ulimits=[
                    Ulimit(name="nofile", soft=256, hard=256),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                network_mode="none" if not limits.network else limits.network,
                environment=limits.environment,
                labels=labels,
                # The report comes through the attached stream; nothing to keep on disk.
                log_config=LogConfig(type="none"),
                # Open stdin closed after the first attach ends (docker-py sets
                # StdinOnce only for a container that is not detached).
                stdin_open=True,
                detach=False,
                auto_remove=True,
            )
            attached = container.attach_socket(
                params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            stream = AttachedStream(attached._sock, limit=report_room)  # type: ignore[union-attr]
            try:
                container.start()
                started = time.monotonic()
                stream.send_and_close(files_message(files))
                deadline = started + limits.timeout_seconds + REPORT_GRACE_SECONDS
                timed_out = aborted = False
                # The stream ends when the runguard does; this deadline only catches a
                # runguard that could not enforce its own.
                while not stream.read_for(max(0.0, min(1.0, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                    if not heartbeat():
                        aborted = True
                        break
            finally:
                attached.close()
            duration_ms = int((time.monotonic() - started) * 1000)
            if timed_out or aborted:
                return SandboxResult(
                    exit_code=None,
                    duration_ms=duration_ms,
                    log="",
                    timed_out=timed_out,
                    aborted=aborted,
                )
            ended = True
            report = parse_report(bytes(stream.stdout))
            if report is not None:
                return result_from_report(report, duration_ms)
            return self._result_without_report(container, bytes(stream.stderr), duration_ms)
        except ImageNotFound as exc:
            raise SandboxError(f"evaluation image {self.image!r} is missing") from exc
        except (APIError, DockerException) as exc:
            raise SandboxError(f"Docker failed while running: {exc}") from exc
        finally:
            # A container that ended by itself removes itself (auto_remove), so the
            # result is not kept waiting for that; any other is removed (killed) here.
            if container is not None and not ended:
                _remove(container)

    def _result_without_report(
        self, container: Container, said: bytes, duration_ms: int
    ) -> SandboxResult:
        """The runguard ended without reporting. Only the kernel can end it silently
        (the program is another user, without the right to signal it): the memory cap
        took it. Anything it says on stderr is our failure, to retry."""
        if said.strip():
            raise SandboxError(
                "the sandbox's supervisor ended without a report: "
                f"{safe_text(said[-2000:]).strip()}"
            )
        try:
            container.reload()
            state = container.attrs.get("State", {})
        except NotFound:  # already gone: it exited, and removed itself
            state = {}
        if state.get("Running"):
            _remove(container)
            raise SandboxError("the sandbox's output stream broke while it still ran")
        return SandboxResult(
            exit_code=state.get("ExitCode"), duration_ms=duration_ms, log="", memory_exceeded=True
        )

    def _containers(self, run_id: int | None = None) -> list[Container]:
        # A run's container removes itself when it ends (auto-remove), so one listed
        # here may be gone by the time docker-py inspects it: skip it, it is gone.
        return self.client.containers.list(
            all=True, filters={"label": _labels(self.deployment, run_id)}, ignore_removed=True
        )

    # Runs no longer create volumes; these find /work volumes an older version left.
    def _volumes(self, run_id: int | None = None) -> list[Volume]:
        return self.client.volumes.list(filters={"label": _labels(self.deployment, run_id)})

    def kill_run_containers(self, run_id: int) -> int:
        """Kill and remove whatever a lost attempt of this run left behind."""
        containers = self._containers(run_id)
        for container in containers:
            _remove(container)
        for volume in self._volumes(run_id):
            _remove_volume(volume)
        return len(containers)

    def remove_leftovers(self, alive_run_ids: set[int]) -> int:
        """Remove evaluation containers (and /work volumes) no live worker is running."""
        removed = 0
        for container in self._containers():
            if _run_id_of(container.labels) not in alive_run_ids:
                _remove(container)
                removed += 1
        for volume in self._volumes():
            if _run_id_of(volume.attrs.get("Labels") or {}) not in alive_run_ids:
                _remove_volume(volume)
        return removed


def _labels(deployment: str, run_id: int | None) -> list[str]:
    labels = [f"{LABEL}=1", f"{DEPLOYMENT_LABEL}={deployment}"]
    return labels + ([f"portal.run_id={run_id}"] if run_id is not None else [])


def _run_id_of(labels: dict[str, str]) -> int:
    return int(labels.get("portal.run_id", "0"))


def _remove(container: Container) -> None:
    try:
        container.remove(force=True, v=True)
    except NotFound:
        pass
    except APIError as exc:
        if exc.status_code == 409:  # auto_remove is already at it
            return
        logger.warning("could not remove container %s: %s", container.short_id, exc)


def _remove_volume(volume: Volume) -> None:
    try:
        volume.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        logger.warning("could not remove volume %s: %s", volume.name[:12], exc)
