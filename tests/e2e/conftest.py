"""A live portal (a real uvicorn process) and a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.live import portal_process


@pytest.fixture
def live_server(services, echo_upstream, tmp_path) -> Iterator[str]:
    upstream = {"PORTAL_LLM_UPSTREAM_URL": echo_upstream.url}
    with portal_process(services, tmp_path, upstream) as base_url:
        yield base_url


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
