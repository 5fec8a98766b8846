"""Start a throwaway portal for a benchmark (or use one given by --url)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from portal.core.embedded import free_loopback_port

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def embedded_portal(
    workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, dict]]:
    """A portal on embedded PostgreSQL/Redis in a temp dir.

    Yields (url, admin token, environment for more `portal` commands on the same data).
    """
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as data_dir:
        os.chmod(data_dir, 0o755)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PORTAL_DATABASE_URL", "PORTAL_REDIS_URL")
        }
        env.update(PORTAL_DATA_DIR=data_dir, PORTAL_LOG_LEVEL="WARNING", PORTAL_EMBEDDED_FAST="1")
        env.update(extra_env or {})
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "admin",
                "create",
                "--email",
                "bench-admin@example.org",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        token = created.stdout.strip().splitlines()[-1]
        port = free_loopback_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            else:
                raise RuntimeError("the benchmark portal did not start")
            yield url, token, env
        finally:
            server.terminate()
            server.wait(timeout=30)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
