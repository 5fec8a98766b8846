"""Helpers for the fault drills: a real worker process to kill, and a batch to watch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from portal.core.db import psycopg_conninfo
from tests.evaluation_helpers import upload

ROOT = Path(__file__).resolve().parents[1]
# A valid answer after 1.5 s: long enough that a fault lands while runs are in flight.
SLOW_BUT_VALID = (
    "import json, sys, time\ntime.sleep(1.5)\n"
    "n = len(json.load(open(sys.argv[1]))['cities'])\n"
    "json.dump({'tour': list(range(n))}, open(sys.argv[2], 'w'))\n"
)


def start_worker(settings, log_path: Path, **extra_env: str) -> subprocess.Popen:
    """`portal worker` as its own process group, so one kill takes all of it."""
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_REDIS_URL": settings.redis_url,
        "PORTAL_STORAGE_LOCAL_DIR": str(settings.local_storage_path),
        "PORTAL_EVAL_RUNNER": "docker",
        "PORTAL_EVAL_IMAGE": settings.eval_image,
        "PORTAL_EVAL_HEARTBEAT_SECONDS": "0.5",
        "PORTAL_EVAL_STALE_AFTER_SECONDS": "3",
        "PORTAL_WORKER_THREADS": "2",
        "PORTAL_LOG_LEVEL": "INFO",
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "worker", "--processes", "1"],
        env=env,
        cwd=ROOT,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=60)


def run_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(psycopg_conninfo(database_url), connect_timeout=3) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM evaluation_run GROUP BY status"))


async def slow_batch(client, teams, admin, *, teams_count: int = 4, seeds: int = 5) -> int:
    """A created (not started) batch of teams_count x seeds slow but valid runs."""
    for number in range(teams_count):
        team = await teams.create(name=f"Drill {number}")
        await upload(client, team, "slow.py", (SLOW_BUT_VALID + f"# {number}\n").encode())
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "drill", "seeds": list(range(1, seeds + 1)), "selection": "final_picks"},
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def wait_for_runs(database_url: str, log_path: Path, *, scored: int, running: int = 1):
    """Until at least `scored` runs are scored and `running` are in flight."""
    for _ in range(600):
        now = run_counts(database_url)
        if now.get("scored", 0) >= scored and now.get("running", 0) >= running:
            return now
        await asyncio.sleep(0.1)
    raise AssertionError(f"no progress: {run_counts(database_url)}\n{log_tail(log_path)}")


def log_tail(log_path: Path, size: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-size:]


def assert_each_run_once(detail: dict, total: int, log_path: Path) -> None:
    assert detail["status"] == "finished", (detail["progress"], log_tail(log_path))
    assert detail["progress"]["counts"] == {"scored": total}, (detail["runs"], log_tail(log_path))
    assert len({(run["submission_id"], run["seed"]) for run in detail["runs"]}) == total
    assert all(run["score"] == 1.0 for run in detail["runs"])


def watchdog_actions(log_path: Path) -> int:
    """How many times the watchdog re-queued or re-sent runs (from the worker logs)."""
    return log_path.read_text(errors="replace").count("watchdog: re-queued")
