"""Per-process worker resources: settings, a sync database engine, storage, kit, runner."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import TYPE_CHECKING

import sqlalchemy as sa
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from portal.core.config import Settings
from portal.core.db import async_database_url
from portal.core.storage import Storage, create_storage
from worker.kits.base import load_kit
from worker.sandbox.base import SandboxError, SandboxLimits

if TYPE_CHECKING:  # imported lazily below: the Docker SDK only where it is used
    from worker.sandbox.docker_runner import DockerRunner
    from worker.sandbox.process_runner import ProcessRunner

logger = logging.getLogger(__name__)


def choose_runner(settings: Settings) -> DockerRunner | ProcessRunner:
    """Docker when asked for or reachable; the process runner only where allowed."""
    from worker.sandbox.docker_runner import DockerRunner
    from worker.sandbox.llm_relay import check_evaluation_network
    from worker.sandbox.process_runner import WARNING, ProcessRunner

    if settings.eval_runner in ("docker", "auto"):
        try:
            runner = DockerRunner(settings.eval_image, deployment=settings.deployment_id)
            runner.ping()
            if settings.eval_network:
                check_evaluation_network(runner.client, settings.eval_network)
            return runner
        except SandboxError as exc:
            if settings.eval_runner == "docker":
                raise
            logger.warning("Docker not usable (%s)", exc)
    if not settings.eval_allow_process_runner:
        raise RuntimeError(
            "no Docker engine is usable and the process runner is not a sandbox; set "
            "PORTAL_EVAL_ALLOW_PROCESS_RUNNER=true to accept that (development only)"
        )
    logger.warning(WARNING)
    return ProcessRunner()


def _required(url: str | None, name: str) -> str:
    if not url:
        raise RuntimeError(
            f"the worker needs {name}; `portal dev` and `portal worker` fill it in "
            "for the embedded servers"
        )
    return url


@dataclass
class WorkerContext:
    settings: Settings
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )

    @cached_property
    def engine(self) -> sa.Engine:
        return sa.create_engine(
            async_database_url(_required(self.settings.database_url, "PORTAL_DATABASE_URL")),
            pool_size=5,
            max_overflow=5,
            pool_pre_ping=True,
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return sessionmaker(self.engine, expire_on_commit=False)

    # Called after a result commits (the leaderboard refresh hooks in here).
    after_result: Callable[[], None] | None = None

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(
            _required(self.settings.redis_url, "PORTAL_REDIS_URL"), socket_timeout=5
        )

    @cached_property
    def storage(self) -> Storage:
        return create_storage(self.settings)

    @cached_property
    def kit(self) -> ModuleType:
        return load_kit(self.settings.eval_kit)

    @cached_property
    def runner(self) -> DockerRunner | ProcessRunner:
        return choose_runner(self.settings)

    @cached_property
    def llm_base_url(self) -> str | None:
        """Where a submission reaches the LLM gateway, or None when it cannot.

        Docker sandboxes only reach it on PORTAL_EVAL_NETWORK at PORTAL_EVAL_LLM_URL; the
        process runner shares the host's loopback, so the portal's own URL works.
        """
        from worker.sandbox.process_runner import ProcessRunner

        if self.settings.eval_llm_url:
            return self.settings.eval_llm_url
        if isinstance(self.runner, ProcessRunner):
            return self.settings.base_url.rstrip("/") + "/llm/v1"
        return None

    def limits(self, environment: dict[str, str] | None = None) -> SandboxLimits:
        s = self.settings
        return SandboxLimits(
            timeout_seconds=s.eval_timeout_seconds,
            memory_mib=s.eval_memory_mib,
            cpus=s.eval_cpus,
            pids_limit=s.eval_pids_limit,
            tmpfs_mib=s.eval_tmpfs_mib,
            work_mib=s.eval_work_mib,
            work_inodes=s.eval_work_inodes,
            log_cap_bytes=s.eval_log_cap_bytes,
            answer_cap_bytes=s.eval_answer_cap_bytes,
            network=s.eval_network,
            environment=environment or {},
        )
