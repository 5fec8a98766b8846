"""Everything at once on this machine: leaderboard pollers, a stream of uploads and a
running evaluation batch, against one portal with its worker.

    uv run python bench/load.py [--seconds 120 --pollers 200 --uploads-per-second 10]

Starts its own portal (embedded PostgreSQL and Redis, 2 uvicorn workers) and a worker
(Docker and the evaluation image needed), registers teams with one solution each,
starts a batch, then for the given time runs pollers that fetch the live board fragment
every 2 s with its ETag (as the pages do), and uploads at a steady rate. Prints, per
endpoint, requests, errors, p50/p95/p99, and when the batch finished. Any error (a
refused connection, a 5xx, an unexpected status) is counted and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict

import httpx
from _http import Connection, multipart
from _portal import ROOT, embedded_portal, percentile

EXAMPLE = (ROOT / "examples" / "tsp_nearest_neighbour.py").read_bytes()


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def record(self, name: str, started: float, status: int | None, ok: set[int], why="") -> None:
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        if status not in ok:
            self.errors[name].append(f"{status} {why}"[:200])

    def print(self) -> int:
        total_errors = 0
        print(
            f"{'endpoint':<24}{'requests':>9}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
        )
        for name, values in sorted(self.latencies.items()):
            errors = len(self.errors[name])
            total_errors += errors
            print(
                f"{name:<24}{len(values):>9}{errors:>8}{percentile(values, 0.5):>10.1f}"
                f"{percentile(values, 0.95):>10.1f}{percentile(values, 0.99):>10.1f}"
            )
            for sample in sorted(set(self.errors[name]))[:3]:
                print(f"    e.g. {sample}")
        print(f"errors: {total_errors}")
        return total_errors


async def poller(url: str, stats: Stats, stop: float, interval: float) -> None:
    """The board's HTMX poll: every `interval` s, with the ETag of the last answer."""
    connection = Connection(url)
    etag = None
    await asyncio.sleep(random.random() * interval)  # spread the pollers out
    while time.monotonic() < stop:
        headers = {"HX-Request": "true", **({"If-None-Match": etag} if etag else {})}
        started = time.perf_counter()
        try:
            status, answer_headers, _ = await connection.request(
                "GET", "/leaderboard", b"", headers
            )
            etag = answer_headers.get("etag", etag)
            stats.record("GET /leaderboard", started, status, {200, 304})
        except OSError as exc:
            stats.record("GET /leaderboard", started, None, {200, 304}, repr(exc))
        await asyncio.sleep(interval)
    connection.close()


async def uploader(url: str, tokens: list[str], stats: Stats, stop: float, rate: float) -> None:
    """Uploads at a steady rate, each on its own task so a slow one never delays the next."""
    connections = [Connection(url) for _ in range(16)]
    free = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)
    count = 0

    async def one(number: int) -> None:
        connection = await free.get()
        body, content_type = multipart(
            {"note": f"load {number}"}, "solution.py", EXAMPLE + f"# {number}\n".encode()
        )
        headers = {
            "Authorization": f"Bearer {tokens[number % len(tokens)]}",
            "Content-Type": content_type,
        }
        started = time.perf_counter()
        try:
            status, _, answer = await connection.request(
                "POST", "/api/v1/submissions", body, headers
            )
            stats.record("POST /api/v1/submissions", started, status, {201}, answer[:120])
        except OSError as exc:
            stats.record("POST /api/v1/submissions", started, None, {201}, repr(exc))
        finally:
            free.put_nowait(connection)

    tasks = []
    next_at = time.monotonic()
    while next_at < stop:
        tasks.append(asyncio.create_task(one(count)))
        count += 1
        next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*tasks)
    for connection in connections:
        connection.close()


async def watch_batch(url: str, admin: str, batch_id: int, stats: Stats, started_at: float):
    """Poll the batch like the admin page does; return seconds until it finished."""
    connection = Connection(url)
    headers = {"Authorization": f"Bearer {admin}"}
    while True:
        started = time.perf_counter()
        try:
            status, _, answer = await connection.request(
                "GET", f"/api/v1/batches/{batch_id}", b"", headers
            )
            stats.record("GET /api/v1/batches/{id}", started, status, {200})
            if status == 200 and json.loads(answer)["status"] in ("finished", "cancelled"):
                connection.close()
                return time.monotonic() - started_at, json.loads(answer)["progress"]
        except OSError as exc:
            stats.record("GET /api/v1/batches/{id}", started, None, {200}, repr(exc))
        await asyncio.sleep(1)


def prepare(url: str, admin: str, teams: int, seeds: int) -> tuple[list[str], int]:
    """Teams with one solution each and a created batch; returns (team tokens, batch id)."""
    tokens = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as http:
        for number in range(teams):
            created = http.post(
                "/api/v1/teams",
                json={"name": f"Load {number}", "email": f"load{number}@example.org"},
            )
            created.raise_for_status()
            token = created.json()["api_token"]
            tokens.append(token)
            http.post(
                "/api/v1/submissions",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("solution.py", EXAMPLE, "text/x-python")},
            ).raise_for_status()
        batch = http.post(
            "/api/v1/batches",
            json={"name": "load", "seeds": list(range(1, seeds + 1)), "selection": "final_picks"},
        )
        batch.raise_for_status()
    return tokens, batch.json()["id"]


async def run(url: str, admin: str, tokens: list[str], batch_id: int, args) -> int:
    stats = Stats()
    async with httpx.AsyncClient(base_url=url) as http:
        started = await http.post(
            f"/api/v1/batches/{batch_id}/start", headers={"Authorization": f"Bearer {admin}"}
        )
        started.raise_for_status()
    began = time.monotonic()
    stop = began + args.seconds
    batch = asyncio.create_task(watch_batch(url, admin, batch_id, stats, began))
    await asyncio.gather(
        *(poller(url, stats, stop, args.poll_interval) for _ in range(args.pollers)),
        uploader(url, tokens, stats, stop, args.uploads_per_second),
    )
    print(
        f"\n{args.seconds} s: {args.pollers} pollers every {args.poll_interval} s, "
        f"{args.uploads_per_second} uploads/s, one batch of {args.teams} x {args.seeds} runs"
    )
    errors = stats.print()
    try:
        seconds, progress = await asyncio.wait_for(batch, timeout=args.batch_timeout)
        print(f"batch finished {seconds:.1f} s after it started: {progress['counts']}")
        if set(progress["counts"]) != {"scored"}:
            errors += 1
    except TimeoutError:
        print(f"batch NOT finished {args.batch_timeout} s after the load ended")
        errors += 1
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--uploads-per-second", type=float, default=10)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-timeout", type=float, default=300)
    args = parser.parse_args()

    extra = {"PORTAL_DAILY_SUBMISSIONS": "1000000", "PORTAL_LOG_LEVEL": "WARNING"}
    with embedded_portal(workers=2, extra_env=extra) as (url, admin, env):
        worker = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "worker", "--threads", "2"],
            env={**env, "PORTAL_EVAL_RUNNER": "docker"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            tokens, batch_id = prepare(url, admin, args.teams, args.seeds)
            errors = asyncio.run(run(url, admin, tokens, batch_id, args))
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=60)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
