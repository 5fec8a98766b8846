"""Real portal processes (uvicorn subprocesses) for tests that need more than ASGI calls."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from portal.core.config import Settings
from portal.core.embedded import free_loopback_port
from portal.main import create_app

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def portal_process(
    services, work_dir: Path, extra_env: dict[str, str] | None = None, name: str = "server"
) -> Iterator[str]:
    """Start `uvicorn portal.asgi:app` on a free loopback port; yield its base URL."""
    port = free_loopback_port()
    env = {
        **os.environ,
        "PORTAL_ENVIRONMENT": "test",
        "PORTAL_SECRET_KEY": "live-test-secret-key-long-enough-xxxxxxxxxxxx",
        "PORTAL_DATABASE_URL": services.database_url,
        "PORTAL_REDIS_URL": services.redis_url,
        "PORTAL_STORAGE_LOCAL_DIR": str(work_dir / "objects"),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    log_path = work_dir / f"{name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "portal.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            if process.poll() is not None:
                raise AssertionError(f"portal exited:\n{log_path.read_text()}")
        else:
            raise AssertionError(f"portal did not start:\n{log_path.read_text()}")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


def route_table_app():
    """The app as built for serving, never started: its routes and OpenAPI schema only."""
    settings = Settings(
        environment="test",
        database_url="postgresql://unused@127.0.0.1:1/unused",
        redis_url="redis://127.0.0.1:1/0",
        storage_local_dir=Path(tempfile.gettempdir()) / "portal-openapi-only",
    )
    return create_app(settings)


def fuzzing_env(llm_upstream_url: str) -> dict[str, str]:
    """Limits out of a fuzzer's way, so every request reaches the code it is aimed at;
    the usage log flushed often, so a call shows in it well within a second."""
    return {
        "PORTAL_LLM_UPSTREAM_URL": llm_upstream_url,
        "PORTAL_LLM_RPM": "100000",
        "PORTAL_LOGIN_FAILURES_PER_MINUTE": "100000",
        "PORTAL_DAILY_SUBMISSIONS": "100000",
        "PORTAL_LLM_USAGE_FLUSH_SECONDS": "0.1",
    }
