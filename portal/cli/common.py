"""What the `portal` commands share: settings, errors, one transaction, signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from portal.core.config import Settings, get_settings
from portal.core.services import backing_services

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Embedded data directory (default ./.portal or PORTAL_DATA_DIR)"
    ),
]


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    settings = get_settings()
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return settings.model_copy(update=overrides) if overrides else settings


def fail(message: str) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def run_in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Run `work` in one committed transaction against the configured or embedded DB."""
    # Imported here so `portal --help` stays quick.
    from portal.core.db import commit, create_engine, create_sessionmaker
    from portal.core.errors import PortalError

    with backing_services(settings, with_redis=False) as urls:
        if migrate:
            from portal.core import migrations

            migrations.upgrade(urls.database_url)

        async def main() -> T:
            engine = create_engine(urls.database_url, pool_size=1, max_overflow=0)
            try:
                async with create_sessionmaker(engine)() as session:
                    result = await work(session)
                    await commit(session)
                    return result
            finally:
                await engine.dispose()

        try:
            return asyncio.run(main())
        except PortalError as exc:
            fail(exc.message)
            raise  # unreachable: fail() exits


def request_board_refresh(settings: Settings) -> None:
    """Ask the workers to refresh the leaderboards (after a committed change to who is
    on them), through the same Redis queue the web app uses."""
    from portal.evaluation.queue import create_broker, enqueue_leaderboard_refresh

    with backing_services(settings) as urls:
        broker = create_broker(urls.redis_url)
        try:
            enqueue_leaderboard_refresh(broker, 0)
        finally:
            broker.close()


def install_sigterm_as_exit() -> None:
    # uvicorn re-raises the signal it caught after shutting down; with this handler a
    # SIGTERM unwinds through our `finally` blocks (stopping worker, Redis, PostgreSQL).
    def handler(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
