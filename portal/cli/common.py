"""What the `portal` commands share: settings, errors, one transaction, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
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


def use_metrics_dir(settings: Settings, command: str) -> Path:
    """Point this process, and every process it starts, at `<data dir>/metrics/<command>`
    for their Prometheus values (portal.core.metrics explains the layout).

    Emptied here, before any child starts: the values of an earlier run's processes go
    with them (counters start again at 0, which Prometheus's rate() expects), and their
    pids, which new processes may reuse, are no longer there to be mixed up with.
    """
    if "prometheus_client" in sys.modules:
        # It picks in-process or multiprocess values once, when it is first imported.
        raise RuntimeError(
            "prometheus_client was imported before the metrics directory was set; "
            "import the app only after use_metrics_dir"
        )
    directory = settings.metrics_dir / command
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.iterdir():
        leftover.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())
    return directory


def write_private(path: Path, text: str) -> None:
    """Created 0600 from the start: never readable by others, not even for a moment."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


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
