"""Fault drills with real services: Redis and PostgreSQL die and come back during a running
batch, and the worker is killed again and again. Every run ends recorded exactly once."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import asynccontextmanager

import pytest

from portal.core import migrations
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.drills import (
    assert_each_run_once,
    kill_group,
    slow_batch,
    start_worker,
    wait_for_runs,
    watchdog_actions,
)
from tests.fixtures.evaluation import eval_containers_left, wait_for_batch
from tests.fixtures.factories import TeamFactory


@pytest.fixture
def own_data_dir(tmp_path):
    data_dir = tmp_path / "own"
    data_dir.mkdir()
    data_dir.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user
    return data_dir


@asynccontextmanager
async def batch_under_way(settings, log_path):
    """A portal on `settings`, a worker process and a 20-run batch with results coming in.

    Yields (client, admin, batch id, finish) where finish() waits for the batch and says
    how long that took.
    """
    app = create_app(settings)
    worker = None
    try:
        async with app.router.lifespan_context(app), make_client(app) as client:
            teams = TeamFactory(app.state.sessionmaker)
            admin = await teams.admin()
            batch_id = await slow_batch(client, teams, admin)
            worker = start_worker(settings, log_path)
            await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
            await wait_for_runs(settings.database_url, log_path, scored=2)

            async def finish(label: str) -> dict:
                restarted = time.monotonic()
                detail = await wait_for_batch(client, admin, batch_id, wait_seconds=180)
                print(
                    f"\n{label} drill: batch finished {time.monotonic() - restarted:.1f} s "
                    f"after the restart; watchdog sweeps that acted: {watchdog_actions(log_path)}"
                )
                assert (await client.get("/readyz")).status_code == 200
                return detail

            yield client, admin, batch_id, finish
    finally:
        kill_group(worker)


async def test_redis_killed_and_restarted_mid_batch(eval_settings, own_data_dir, tmp_path):
    """SIGKILL loses what Redis had not saved (queued messages among it); the watchdog
    re-sends runs that sat queued too long, so the batch still completes."""
    redis = EmbeddedRedis(own_data_dir)
    settings = eval_settings.model_copy(update={"redis_url": redis.start()})
    log_path = tmp_path / "worker.log"
    try:
        async with batch_under_way(settings, log_path) as (client, _, _, finish):
            redis.process.kill()
            redis.process.wait()
            # Meanwhile the portal says it cannot reach its cache, and does not crash.
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "redis" in ready.text.lower()
            await asyncio.sleep(2)
            redis.start()  # same port, whatever it had saved
            detail = await finish("redis")
    finally:
        redis.stop()
    assert_each_run_once(detail, 20, log_path)


async def test_postgres_restarted_mid_batch(eval_settings, own_data_dir, tmp_path):
    """While PostgreSQL is down the portal answers 503; it recovers by itself, and so does
    the batch (runs whose worker lost the database are re-queued by the watchdog)."""
    postgres = EmbeddedPostgres(own_data_dir)
    database_url = postgres.start()
    migrations.upgrade(database_url)
    settings = eval_settings.model_copy(update={"database_url": database_url})
    log_path = tmp_path / "worker.log"
    try:
        async with batch_under_way(settings, log_path) as (client, admin, batch_id, finish):
            postgres.stop()
            down = await client.get(f"/api/v1/batches/{batch_id}", headers=admin.auth)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "service_unavailable"
            assert down.headers["retry-after"]
            assert (await client.get("/readyz")).status_code == 503
            await asyncio.sleep(3)
            postgres.start()  # same port and data
            detail = await finish("postgres")
    finally:
        postgres.stop()
    assert_each_run_once(detail, 20, log_path)


async def test_worker_killed_five_times_in_one_batch(
    client, teams, eval_settings, tmp_path, docker_client
):
    admin = await teams.admin()
    batch_id = await slow_batch(client, teams, admin, teams_count=4, seeds=6)
    log_path = tmp_path / "workers.log"
    # Each kill is our failure, not the team's: allow the attempts five kills can cost.
    attempts = {"PORTAL_EVAL_MAX_ATTEMPTS": "8"}
    shuffle = random.Random()
    worker = start_worker(eval_settings, log_path, **attempts)
    try:
        await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
        scored = 0
        for _ in range(5):
            # A random point: after one to three more results, plus up to a second.
            scored += shuffle.randint(1, 3)
            await wait_for_runs(eval_settings.database_url, log_path, scored=scored, running=0)
            await asyncio.sleep(shuffle.random())
            kill_group(worker)
            worker = start_worker(eval_settings, log_path, **attempts)
        detail = await wait_for_batch(client, admin, batch_id, wait_seconds=240)
    finally:
        kill_group(worker)
    assert_each_run_once(detail, 24, log_path)
    retried = sum(run["attempts"] > 1 for run in detail["runs"])
    print(f"\nworker drill: 5 kills, 24 runs scored once each, {retried} needed a retry")
    assert sum(run["attempts"] > 1 for run in detail["runs"]) >= 1
    assert eval_containers_left(docker_client) == []
