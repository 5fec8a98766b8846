"""A live portal (a real uvicorn process) and a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portal.core.embedded import free_loopback_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_server(services, tmp_path) -> Iterator[str]:
    port = free_loopback_port()
    env = {
        **os.environ,
        "PORTAL_ENVIRONMENT": "test",
        "PORTAL_SECRET_KEY": "browser-test-secret-key-long-enough-xxxxxxxx",
        "PORTAL_DATABASE_URL": services.database_url,
        "PORTAL_REDIS_URL": services.redis_url,
        "PORTAL_STORAGE_LOCAL_DIR": str(tmp_path / "objects"),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
    }
    log_path = tmp_path / "server.log"
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


@pytest.fixture
async def browser(chromium_path):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()
