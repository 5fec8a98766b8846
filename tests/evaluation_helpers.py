"""Helpers for evaluation tests: seed teams with example solutions, run a batch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# Statements for fill_work: one new file in the working directory (`made` counts them).
ONE_MIB_FILE = "open(f'fill{made}', 'wb').write(b'0' * 1048576)"
EMPTY_FILE = "open(f'empty{made}', 'w').close()"


def fill_work(make_one: str, count: int, hold_seconds: float = 0) -> str:
    """A submission that makes `count` files in its working directory, stops at the first
    write that fails, keeps its files a moment (for a test watching the disk), and fails
    if a write failed."""
    return (
        "import time\nmade = 0\nerror = None\ntry:\n"
        f"    while made < {count}:\n"
        f"        {make_one}\n"
        "        made += 1\n"
        "except OSError as exc:\n    error = exc\n"
        "print('made', made, 'then', error, flush=True)\n"
        f"time.sleep({hold_seconds})\n"
        "raise SystemExit(1 if error else 0)\n"
    )


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


async def upload(client, team, name: str, content: bytes) -> int:
    response = await client.post(
        "/api/v1/submissions", headers=team.auth, files={"file": (name, content, "text/x-python")}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def run_batch(client, admin, seeds, selection="final_picks", wait_seconds=120) -> dict:
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "test batch", "seeds": seeds, "selection": selection},
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    started = await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
    assert started.status_code == 200, started.text
    return await wait_for_batch(client, admin, batch_id, wait_seconds)


async def wait_for_batch(client, admin, batch_id: int, wait_seconds: float = 120) -> dict:
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        detail = (await client.get(f"/api/v1/batches/{batch_id}", headers=admin.auth)).json()
        if detail["status"] in ("finished", "cancelled"):
            return detail
        await asyncio.sleep(0.3)
    raise AssertionError(f"batch {batch_id} did not finish: {detail['progress']}")
