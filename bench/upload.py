"""Upload throughput and latency, against /healthz measured in the same run.

    uv run python bench/upload.py                       # starts its own portal
    uv run python bench/upload.py --url URL --admin-token TOKEN

16 concurrent clients (one team each, quota raised for the run) upload distinct 10 KiB
files. Printed: uploads/s, p50 and p95 latency, and the same for GET /healthz with the
same concurrency, plus the ratios, so figures compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _portal import embedded_portal, percentile


def source_file(client: int, number: int, size: int = 10 * 1024) -> bytes:
    header = f"# client {client} upload {number} {uuid.uuid4().hex}\n".encode()
    filler = b"# " + b"x" * 70 + b"\n"
    body = header + filler * ((size - len(header)) // len(filler))
    return body + b"#" * (size - len(body) - 1) + b"\n"


async def make_teams(http: httpx.AsyncClient, admin_token: str, count: int, quota: int):
    headers = {"Authorization": f"Bearer {admin_token}"}
    tokens = []
    run = uuid.uuid4().hex[:6]
    for number in range(count):
        created = await http.post(
            "/api/v1/teams",
            headers=headers,
            json={"name": f"bench {run} {number}", "email": f"bench-{run}-{number}@example.org"},
        )
        created.raise_for_status()
        team = created.json()
        patched = await http.patch(
            f"/api/v1/teams/{team['id']}", headers=headers, json={"daily_submission_limit": quota}
        )
        patched.raise_for_status()
        tokens.append(team["api_token"])
    return tokens


async def timed_requests(make_request, clients: int, per_client: int):
    latencies: list[float] = []
    errors = 0

    async def worker(client: int) -> None:
        nonlocal errors
        for number in range(per_client):
            started = time.perf_counter()
            response = await make_request(client, number)
            latencies.append(time.perf_counter() - started)
            if response.status_code >= 400:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in range(clients)))
    elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def report(name: str, latencies: list[float], elapsed: float, errors: int) -> dict:
    figures = {
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
    }
    print(
        f"{name:<16} {len(latencies):>5} requests  {figures['rate']:8.1f} req/s  "
        f"p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms  errors {errors}"
    )
    return figures


async def run(url: str, admin_token: str, clients: int, per_client: int) -> None:
    limits = httpx.Limits(max_connections=clients * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        tokens = await make_teams(http, admin_token, clients, per_client + 5)

        async def upload(client: int, number: int):
            return await http.post(
                "/api/v1/submissions",
                headers={"Authorization": f"Bearer {tokens[client]}"},
                files={
                    "file": (f"c{client}_{number}.py", source_file(client, number), "text/x-python")
                },
            )

        async def health(client: int, number: int):
            return await http.get("/healthz")

        await timed_requests(health, clients, 5)  # warm up connections
        print(f"{clients} concurrent clients, {per_client} requests each, against {url}")
        healthz = report("GET /healthz", *await timed_requests(health, clients, per_client))
        uploads = report("POST upload", *await timed_requests(upload, clients, per_client))
        print(
            f"ratio upload/healthz: throughput {uploads['rate'] / healthz['rate']:.3f}x, "
            f"p50 {uploads['p50'] / healthz['p50']:.1f}x, "
            f"p95 {uploads['p95'] / healthz['p95']:.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running portal; default: start an embedded one")
    parser.add_argument("--admin-token", help="admin API token for --url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (embedded)")
    args = parser.parse_args()
    if args.url and not args.admin_token:
        parser.error("--url needs --admin-token (teams are created for the run)")
    context = (
        contextlib.nullcontext((args.url, args.admin_token))
        if args.url
        else embedded_portal(args.workers)
    )
    with context as (url, token):
        asyncio.run(run(url, token, args.clients, args.per_client))


if __name__ == "__main__":
    main()
