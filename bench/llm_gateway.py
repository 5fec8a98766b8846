"""Latency the LLM gateway adds, against calling the same stand-in model directly.

Both paths are measured in the same run, interleaved in rounds so drift on a noisy
machine hits both alike: the stand-in model (`echo`) runs in its own uvicorn process,
the portal in another (one uvicorn worker, embedded PostgreSQL and Redis), and this
script is the client. The team's budgets are raised so no call is refused, but every call still
takes and settles its share of each (requests, tokens, a parallel slot). Printed: p50
and p99 per path and the difference, and calls per second per path, at concurrency 1
and 32. The targets: at most 1 ms added at p50 at concurrency 1, and at least 1,000
calls/s through the gateway at 32 callers on one worker.

    uv run python bench/llm_gateway.py [--requests 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
from _http import Connection
from _portal import ROOT, embedded_portal, percentile

sys.path.insert(0, str(ROOT))
from portal.core.embedded import free_loopback_port

BODY = {
    "model": "echo",
    "messages": [
        {"role": "system", "content": "You plan travelling salesman tours."},
        {"role": "user", "content": "Which of 120 cities should the tour start from?"},
    ],
}


def start_echo() -> tuple[subprocess.Popen, str]:
    port = free_loopback_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "portal.llm.echo:echo_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the stand-in model did not start")


async def timed_calls(url: str, headers: dict, count: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = count
    body = json.dumps(BODY).encode()

    async def caller() -> None:
        nonlocal remaining
        connection = Connection(url)
        path = urlsplit(url).path
        try:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                status, _, answer = await connection.request(
                    "POST", path, body, {**headers, "Content-Type": "application/json"}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{url} answered {status}: {answer[:300]!r}")
        finally:
            connection.close()

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


async def measure(direct_url: str, gateway_url: str, token: str, args) -> None:
    paths = {
        "direct": (f"{direct_url}/chat/completions", {}),
        "gateway": (
            f"{gateway_url}/llm/v1/chat/completions",
            {"Authorization": f"Bearer {token}"},
        ),
    }
    for url, headers in paths.values():  # warm pools and caches
        await timed_calls(url, headers, 200, 8)
    for concurrency in (1, 32):
        samples: dict[str, list[float]] = {name: [] for name in paths}
        busy: dict[str, float] = dict.fromkeys(paths, 0.0)  # wall seconds spent calling
        per_round = max(args.requests // args.rounds, concurrency)
        for _ in range(args.rounds):
            for name, (url, headers) in paths.items():
                started = time.perf_counter()
                samples[name] += await timed_calls(url, headers, per_round, concurrency)
                busy[name] += time.perf_counter() - started
        direct, gateway = samples["direct"], samples["gateway"]
        print(f"\nconcurrency {concurrency}: {len(direct)} calls per path")
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            d, g = percentile(direct, fraction), percentile(gateway, fraction)
            print(f"  {label}: direct {d:7.2f} ms   gateway {g:7.2f} ms   added {g - d:+7.2f} ms")
        rates = {name: len(samples[name]) / busy[name] for name in paths}
        print(
            f"  throughput: direct {rates['direct']:7.0f} calls/s   "
            f"gateway {rates['gateway']:7.0f} calls/s   "
            f"({rates['gateway'] / rates['direct']:.2f} of direct)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="calls per path and level")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    args = parser.parse_args()
    echo, echo_url = start_echo()
    try:
        extra = {
            "PORTAL_LLM_UPSTREAM_URL": echo_url,
            "PORTAL_LLM_RPM": "100000000",
            "PORTAL_LLM_TOKENS_PER_MINUTE": "1000000000",
            "PORTAL_LLM_TOKENS_PER_DAY": "1000000000000",
            "PORTAL_LLM_MAX_PARALLEL": "1000",
        }
        with embedded_portal(extra_env=extra) as (url, token, _env):
            print(f"stand-in model at {echo_url}; portal at {url}")
            asyncio.run(measure(echo_url, url, token, args))
    finally:
        echo.terminate()
        echo.wait(timeout=10)


if __name__ == "__main__":
    main()
