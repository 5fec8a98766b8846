"""Where the database and Redis are: configured servers, or the embedded ones.

When PORTAL_DATABASE_URL / PORTAL_REDIS_URL are unset, every command uses the embedded
servers in PORTAL_DATA_DIR: it reuses them if `portal dev` is already running there,
and otherwise starts them for as long as the command runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from portal.core.config import Settings, get_settings
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


@contextlib.contextmanager
def backing_services(settings: Settings, *, with_redis: bool = True) -> Iterator[ServiceUrls]:
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        database_url = settings.database_url
        if not database_url:
            postgres = EmbeddedPostgres(settings.data_dir)
            database_url = postgres.start()
            started.append(postgres)
        redis_url = settings.redis_url or ""
        if not redis_url and with_redis:
            redis = EmbeddedRedis(settings.data_dir)
            redis_url = redis.start()
            started.append(redis)
        yield ServiceUrls(database_url=database_url, redis_url=redis_url)
    finally:
        for server in reversed(started):
            server.stop()


def resolve_database_url() -> str:
    """For tools run outside the CLI (plain `alembic`): the URL, starting embedded PG if needed.

    A server started here gets a parent-death signal, so it stops when the tool exits.
    """
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    return EmbeddedPostgres(settings.data_dir).start()
