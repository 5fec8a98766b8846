"""Run one submission in a fresh, locked-down container.

Files go in and out through the Docker API (put_archive / get_archive), never a host bind
mount, so the worker can itself run in a container that only has the Docker socket. The
root file system is read-only, /tmp is a small noexec tmpfs, and the container is always
removed in `finally`.

/work is a size- and inode-capped tmpfs volume, so a submission cannot fill the host's
disk (the one PostgreSQL uses) or its inode table. A tmpfs volume loses its files when
nothing has it mounted, and the engine mounts a volume only while a container runs or an
archive call is under way; so a "keeper" container mounts it read-only for the whole run,
which keeps the inputs put before start and the answer read after exit, and lets the
worker measure, trusting nothing the submission says, whether /work ended up full.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tarfile
import time

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.volumes import Volume
from docker.types import LogConfig, Mount, Ulimit

from worker.sandbox.base import Heartbeat, SandboxError, SandboxLimits, SandboxResult, cap_log

logger = logging.getLogger(__name__)
SANDBOX_UID = 65534
LABEL = "portal.eval"
# Which portal a container belongs to (Settings.deployment_id): run ids repeat across
# deployments and test sessions sharing one engine.
DEPLOYMENT_LABEL = "portal.deployment"
WORKDIR = "/work"
# Docker keeps at most two files of this size (the tail of the output); we read that
# back and keep a byte-capped head and tail of it.
DOCKER_LOG_MAX = "1m"
# A write that hits the cap fills /work to its last page (write() stores what fits, then
# fails), so "full" is "less than this left"; a little slack for tmpfs rounding.
FULL_BELOW_BYTES = 64 * 1024


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = info.gid = SANDBOX_UID
            info.mode = 0o644
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_answer(container: Container, path: str, cap: int) -> tuple[bytes | None, bool]:
    try:
        stream, stat = container.get_archive(path)
    except NotFound:
        return None, False
    if (stat or {}).get("size", 0) > cap:
        return None, True
    data = io.BytesIO()
    for chunk in stream:
        data.write(chunk)
        if data.tell() > cap + 64 * 1024:  # tar overhead; never hold more than this
            return None, True
    data.seek(0)
    with tarfile.open(fileobj=data, mode="r") as archive:
        member = archive.next()
        if member is None or not member.isfile():
            return None, False
        handle = archive.extractfile(member)
        return (handle.read() if handle else None), False


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
        container = keeper = work = None
        labels = {
            LABEL: "1",
            DEPLOYMENT_LABEL: self.deployment,
            "portal.run_id": str(run_id),
            "portal.worker": worker_id,
        }
        started = time.monotonic()
        try:
            work = self._work_volume(limits, labels)
            keeper = self._keeper(work, labels)
            container = self.client.containers.create(
                self.image,
                command,
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                working_dir=WORKDIR,
                read_only=True,
                tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_mib}m"},  # noqa: S108
                mounts=[Mount(target=WORKDIR, source=work.name, type="volume")],
                # Files in /tmp and /work are tmpfs pages charged to this container, so
                # this one cap covers the program's memory and its files: a run never
                # holds more than memory_mib of the host's RAM, whatever it does. Settings
                # keep work_mib below it so the disk cap, not this one, stops a writer.
                mem_limit=f"{limits.memory_mib}m",
                memswap_limit=f"{limits.memory_mib}m",
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids_limit,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ulimits=[
                    Ulimit(name="nofile", soft=256, hard=256),
                    Ulimit(
                        name="fsize",
                        soft=limits.file_size_cap_bytes,
                        hard=limits.file_size_cap_bytes,
                    ),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                network_mode="none" if not limits.network else limits.network,
                environment=limits.environment,
                labels=labels,
                log_config=LogConfig(
                    type="json-file", config={"max-size": DOCKER_LOG_MAX, "max-file": "2"}
                ),
                stdin_open=False,
                detach=True,
            )
            container.put_archive(WORKDIR, tar_of(files))
            container.start()
            started = time.monotonic()
            deadline = started + limits.timeout_seconds
            timed_out = aborted = False
            exit_code = None
            while True:
                # The worker enforces the deadline itself; wait() is only a polling step.
                remaining = deadline - time.monotonic()
                try:
                    status = container.wait(timeout=max(0.1, min(1.0, remaining)))
                    exit_code = status.get("StatusCode")
                    break
                except Exception as exc:  # requests' ReadTimeout: still running
                    if not _is_timeout(exc):
                        raise
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                if not heartbeat():
                    aborted = True
                    break
            duration_ms = int((time.monotonic() - started) * 1000)
            if timed_out or aborted:
                _kill(container)
            container.reload()
            oom_killed = bool(container.attrs.get("State", {}).get("OOMKilled"))
            raw_log = container.logs(stdout=True, stderr=True)
            log, truncated = cap_log(raw_log, limits.log_cap_bytes)
            answer, too_large = (None, False)
            if not (timed_out or aborted):
                answer, too_large = _read_answer(
                    container, f"{WORKDIR}/{answer_file}", limits.answer_cap_bytes
                )
            disk_full = not aborted and _work_is_full(keeper)
            return SandboxResult(
                exit_code=exit_code,
                duration_ms=duration_ms,
                log=log,
                answer=answer,
                timed_out=timed_out,
                memory_exceeded=oom_killed,
                disk_exceeded=disk_full,
                answer_too_large=too_large,
                aborted=aborted,
                log_truncated=truncated,
            )
        except ImageNotFound as exc:
            raise SandboxError(f"evaluation image {self.image!r} is missing") from exc
        except (APIError, DockerException) as exc:
            raise SandboxError(f"Docker failed while running: {exc}") from exc
        finally:
            # The volume last: the engine refuses to remove one a container still uses.
            for leftover in (container, keeper):
                if leftover is not None:
                    _remove(leftover)
            if work is not None:
                _remove_volume(work)

    def _work_volume(self, limits: SandboxLimits, labels: dict[str, str]) -> Volume:
        options = (
            f"size={limits.work_mib}m,nr_inodes={limits.work_inodes},"
            f"uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700,nosuid,nodev"
        )
        return self.client.volumes.create(
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": options},
            labels=labels,
        )

    def _keeper(self, work: Volume, labels: dict[str, str]) -> Container:
        """A container that only holds /work mounted (read-only) while the run lasts."""
        return self.client.containers.run(
            self.image,
            ["sleep", "infinity"],
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            read_only=True,
            mounts=[Mount(target=WORKDIR, source=work.name, type="volume", read_only=True)],
            mem_limit="32m",
            memswap_limit="32m",
            pids_limit=8,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network_mode="none",
            labels=labels,
            detach=True,
        )

    def _containers(self, run_id: int | None = None) -> list[Container]:
        return self.client.containers.list(
            all=True, filters={"label": _labels(self.deployment, run_id)}
        )

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


def _work_is_full(keeper: Container) -> bool:
    """Whether /work ran out of space or of inodes, as the kernel (not the program) says."""
    output = keeper.exec_run(["stat", "--file-system", "--format", "%a %S %d", WORKDIR]).output
    assert isinstance(output, bytes)  # not streamed: the whole output at once
    try:
        free_blocks, block_size, free_inodes = (int(field) for field in output.split())
    except ValueError as exc:
        raise SandboxError(f"could not measure /work: {output[:200]!r}") from exc
    return free_blocks * block_size < FULL_BELOW_BYTES or free_inodes == 0


def _is_timeout(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "timeout" in text or "timed out" in text


def _kill(container: Container) -> None:
    with contextlib.suppress(APIError, NotFound):  # it may have exited meanwhile
        container.kill()


def _remove(container: Container) -> None:
    try:
        container.remove(force=True, v=True)
    except NotFound:
        pass
    except APIError as exc:
        logger.warning("could not remove container %s: %s", container.short_id, exc)


def _remove_volume(volume: Volume) -> None:
    try:
        volume.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        logger.warning("could not remove volume %s: %s", volume.name[:12], exc)
