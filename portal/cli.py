"""The `portal` command.

Without PORTAL_DATABASE_URL / PORTAL_REDIS_URL every command uses the embedded servers
in the data directory (reusing those of a running `portal dev`), so the same commands
work on a laptop and against production services.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from portal.core.config import Settings, get_settings
from portal.core.logging import configure_logging
from portal.core.services import backing_services

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from portal.seed import IssuedToken
    from portal.teams.models import Team

app = typer.Typer(
    help="Competition portal: run it, migrate it, manage teams.", no_args_is_help=True
)
admin_app = typer.Typer(help="Admin accounts.", no_args_is_help=True)
team_app = typer.Typer(help="Participant teams.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(team_app, name="team")

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


def queue_prefetch(threads: int) -> int:
    """One message per thread plus one waiting: the next run starts the moment a thread
    frees up (Dramatiq backs off polling while all slots are busy), and a worker never
    holds more than one run that another worker could have taken. If a worker dies with
    that one unclaimed, the watchdog re-sends it."""
    return threads + 1


def _install_sigterm_as_exit() -> None:
    # uvicorn re-raises the signal it caught after shutting down; with this handler a
    # SIGTERM unwinds through our `finally` blocks (stopping worker, Redis, PostgreSQL).
    def handler(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    data_dir: DataDirOption = None,
) -> None:
    """Everything in one process: embedded PostgreSQL and Redis, local storage, a worker
    and the portal. Seeds an admin and demo teams on first start."""
    import dramatiq
    import uvicorn

    from portal.core import migrations
    from portal.main import create_app
    from portal.seed import seed_demo_data
    from worker.tasks import setup

    # The laptop default: evaluate in Docker when an engine answers, otherwise in plain
    # processes, which the worker announces loudly as not sandboxed.
    settings = load_settings(
        data_dir, base_url=f"http://{host}:{port}", eval_allow_process_runner=True
    )
    configure_logging(settings.log_level, json_output=False)
    _install_sigterm_as_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"Starting embedded services in {settings.data_dir.resolve()} ...")
    with backing_services(settings) as urls:
        settings = settings.model_copy(
            update={"database_url": urls.database_url, "redis_url": urls.redis_url}
        )
        migrations.upgrade(urls.database_url)
        issued = run_in_transaction(settings, lambda session: seed_demo_data(session, settings))
        _print_seeded(settings, issued)

        side_servers, settings = _start_dev_llm(settings)
        broker, context = setup(settings)
        note = "" if context.runner.is_sandbox else " (NOT a sandbox: no Docker engine)"
        typer.secho(f"Evaluations run with the {context.runner.name} runner{note}", bold=True)
        worker = dramatiq.Worker(
            broker, worker_threads=settings.worker_threads, worker_timeout=1000
        )
        worker.queue_prefetch = queue_prefetch(settings.worker_threads)
        worker.start()
        if not context.runner.is_sandbox:
            # Pin the choice so every page can say plainly that this is not a sandbox.
            settings = settings.model_copy(update={"eval_runner": "process"})
        try:
            application = create_app(settings)
            typer.secho(f"\nPortal running at http://{host}:{port}  (Ctrl-C to stop)\n", bold=True)
            uvicorn.Server(
                uvicorn.Config(application, host=host, port=port, log_config=None, access_log=False)
            ).run()
        finally:
            typer.echo("Stopping worker, Redis and PostgreSQL ...")
            worker.stop()
            broker.close()
            for server in reversed(side_servers):
                server.stop()


DEV_EVAL_NETWORK = "portal-dev-evaluation"


def _start_dev_llm(settings: Settings) -> tuple[list, Settings]:
    """The LLM side of `portal dev`: the stand-in model unless an upstream is configured,
    and, when evaluations run in Docker, a gateway-only listener on an internal network
    so sandboxed submissions can call the model and reach nothing else."""
    from portal.core.background_server import BackgroundServer
    from portal.llm.echo import EchoServer
    from portal.main import create_gateway_app
    from worker.context import choose_runner
    from worker.sandbox.docker_runner import DockerRunner
    from worker.sandbox.llm_relay import LlmRelay

    servers: list = []
    if "llm_upstream_url" not in get_settings().model_fields_set:
        echo = EchoServer().start()
        servers.append(echo)
        settings = settings.model_copy(update={"llm_upstream_url": echo.url})
        typer.echo(f"LLM gateway upstream: the stand-in model 'echo' at {echo.url}")
    runner = choose_runner(settings)
    if isinstance(runner, DockerRunner) and not settings.eval_network:
        relay = LlmRelay(runner.client, settings.eval_image, DEV_EVAL_NETWORK)
        host = relay.prepare()
        gateway = BackgroundServer(create_gateway_app(settings), host, 0, "llm-gateway")
        servers.append(gateway.start())
        port = int(gateway.address.rsplit(":", 1)[1])
        servers.append(relay)
        sandbox_url = relay.start(host, port)
        settings = settings.model_copy(
            update={"eval_network": DEV_EVAL_NETWORK, "eval_llm_url": sandbox_url}
        )
        typer.echo(f"Sandboxes reach only the LLM gateway, at {sandbox_url}")
    return servers, settings


def _print_seeded(settings: Settings, issued: list[IssuedToken]) -> None:
    if not issued:
        typer.echo("Demo data already present (tokens were printed on the first start; ")
        typer.echo("use `portal team rotate-token --email ...` for a new one).")
        return
    tokens_file = settings.data_dir / "demo-tokens.txt"
    lines = [f"{item.role:<12} {item.email:<22} {item.token}" for item in issued]
    # Created 0600 from the start: never readable by others, not even for a moment.
    descriptor = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    typer.secho(f"\nDemo accounts (tokens are shown once; also saved to {tokens_file}):", bold=True)
    for line in lines:
        typer.echo("  " + line)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the portal (production: set PORTAL_DATABASE_URL and PORTAL_REDIS_URL)."""
    import uvicorn

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_json)
    settings.check_safe_for_production()
    _install_sigterm_as_exit()
    with backing_services(settings) as urls:
        env = {"PORTAL_DATABASE_URL": urls.database_url, "PORTAL_REDIS_URL": urls.redis_url}
        os.environ.update(env)
        get_settings.cache_clear()
        uvicorn.run(
            "portal.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )


@app.command()
def gateway(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    data_dir: DataDirOption = None,
) -> None:
    """Serve only the LLM gateway (/llm/*): the listener evaluation sandboxes reach on
    PORTAL_EVAL_NETWORK. Nothing else of the portal is exposed on it."""
    import uvicorn

    from portal.main import create_gateway_app

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_json)
    settings.check_safe_for_production()
    _install_sigterm_as_exit()
    with backing_services(settings) as urls:
        settings = settings.model_copy(
            update={"database_url": urls.database_url, "redis_url": urls.redis_url}
        )
        uvicorn.run(
            create_gateway_app(settings), host=host, port=port, log_config=None, access_log=False
        )


@app.command()
def worker(
    processes: Annotated[int | None, typer.Option(help="Worker processes")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per process")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the Dramatiq worker that executes evaluation runs."""
    from worker.context import choose_runner

    settings = load_settings(data_dir)
    with backing_services(settings) as urls:
        settings = settings.model_copy(
            update={"database_url": urls.database_url, "redis_url": urls.redis_url}
        )
        try:
            runner = choose_runner(settings)
        except Exception as exc:  # say why the worker cannot evaluate, then stop
            fail(str(exc))
        typer.echo(f"Evaluations run with the {runner.name} runner.", err=True)
        env = dict(
            os.environ,
            PORTAL_DATABASE_URL=urls.database_url,
            PORTAL_REDIS_URL=urls.redis_url,
            dramatiq_queue_prefetch=str(queue_prefetch(threads or settings.worker_threads)),
        )
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "worker.actors",
            "--processes",
            str(processes or settings.worker_processes),
            "--threads",
            str(threads or settings.worker_threads),
        ]
        process = subprocess.Popen(command, env=env)

        # Forward Ctrl-C / SIGTERM to Dramatiq (it finishes or requeues its messages),
        # then stop the embedded servers on the way out.
        def forward(signum: int, frame: FrameType | None) -> None:
            process.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        raise typer.Exit(process.wait())


eval_image_app = typer.Typer(help="The evaluation sandbox image.", no_args_is_help=True)
app.add_typer(eval_image_app, name="eval-image")


@eval_image_app.command("build")
def eval_image_build(
    offline: Annotated[bool, typer.Option(help="No registry: debootstrap a Debian base")] = False,
    tag: Annotated[str | None, typer.Option(help="Image tag (default PORTAL_EVAL_IMAGE)")] = None,
    mirror: Annotated[str | None, typer.Option(help="Debian mirror (default: apt's)")] = None,
) -> None:
    """Build the image evaluation containers run (worker/sandbox/Dockerfile)."""
    from worker.sandbox.image import build_image

    tag = tag or get_settings().eval_image
    try:
        build_image(tag, offline=offline, mirror=mirror)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        fail(f"image build failed: {exc}")
    typer.echo(f"Built {tag}.")


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    data_dir: DataDirOption = None,
) -> None:
    """Upgrade the database schema (Alembic) to REVISION, by default the newest."""
    from portal.core import migrations

    settings = load_settings(data_dir)
    with backing_services(settings, with_redis=False) as urls:
        migrations.upgrade(urls.database_url, revision)
    typer.echo(f"Database migrated to {revision}.")


def _print_issued(team: Team, token: str) -> None:
    typer.echo(f"{team.role.capitalize()} {team.name!r} <{team.email}> (id {team.id}).")
    typer.echo("API token (shown once; the portal keeps only a hash):")
    typer.echo(token)


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="Admin's login email")],
    name: Annotated[str | None, typer.Option(help="Display name (default: from email)")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an admin account; prints its API token on the last line."""
    _create_team(name or email.split("@")[0], email, "admin", data_dir)


@team_app.command("create")
def team_create(
    name: Annotated[str, typer.Option(help="Team name (unique)")],
    email: Annotated[str, typer.Option(help="Team's login email (unique)")],
    data_dir: DataDirOption = None,
) -> None:
    """Create a participant team; prints its API token on the last line."""
    _create_team(name, email, "participant", data_dir)


def _create_team(name: str, email: str, role: str, data_dir: Path | None) -> None:
    from pydantic import ValidationError

    from portal.core.errors import validation_summary
    from portal.teams import service as teams
    from portal.teams.schemas import TeamCreate

    try:
        data = TeamCreate(name=name, email=email, role=role)
    except ValidationError as exc:
        fail(validation_summary(exc, with_field=False))

    async def work(session: AsyncSession) -> tuple[Team, str]:
        return await teams.create(session, data, actor=None)

    team, token = run_in_transaction(load_settings(data_dir), work, migrate=True)
    _print_issued(team, token)


@team_app.command("import")
def team_import(
    file: Annotated[Path, typer.Argument(help="CSV with name,email per line", exists=True)],
    data_dir: DataDirOption = None,
) -> None:
    """Create many teams from a CSV (name,email). All or nothing: any bad line creates none."""
    from pydantic import ValidationError

    from portal.core.errors import validation_summary
    from portal.teams import service as teams
    from portal.teams.schemas import TeamCreate

    rows: list[TeamCreate] = []
    problems: list[str] = []
    with file.open(newline="", encoding="utf-8-sig") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line_number == 1 and [c.strip().lower() for c in row[:2]] == ["name", "email"]:
                continue
            if len(row) != 2:
                problems.append(
                    f"line {line_number}: expected 2 columns (name,email), got {len(row)}"
                )
                continue
            try:
                rows.append(TeamCreate(name=row[0], email=row[1]))
            except ValidationError as exc:
                reason = validation_summary(exc, with_field=False)
                problems.append(f"line {line_number}: {reason}")
    emails = [r.email for r in rows]
    names = [r.name.lower() for r in rows]
    problems += [
        f"email {e} appears more than once"
        for e in sorted({e for e in emails if emails.count(e) > 1})
    ]
    problems += [
        f"name {n!r} appears more than once"
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        fail("nothing imported:\n  " + "\n  ".join(problems))
    if not rows:
        fail(f"{file} holds no teams")

    async def work(session: AsyncSession) -> list[tuple[Team, str]]:
        return [await teams.create(session, data, actor=None) for data in rows]

    created = run_in_transaction(load_settings(data_dir), work, migrate=True)
    writer = csv.writer(sys.stdout)
    writer.writerow(["name", "email", "api_token"])
    for team, token in created:
        writer.writerow([team.name, team.email, token])
    typer.echo(f"Imported {len(created)} teams. Tokens are shown once.", err=True)


@team_app.command("rotate-token")
def team_rotate_token(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Issue a new API token (the old one and all sessions stop working); prints it last."""
    from portal.teams import service as teams

    async def work(session: AsyncSession) -> tuple[Team, str]:
        team = await teams.require_by_email(session, email)
        return team, await teams.rotate_token(session, team, actor=None)

    team, token = run_in_transaction(load_settings(data_dir), work)
    _print_issued(team, token)


def _set_active(email: str, active: bool, data_dir: Path | None) -> None:
    from portal.teams import service as teams

    async def work(session: AsyncSession) -> Team:
        team = await teams.require_by_email(session, email)
        await teams.set_active(session, team, active, actor=None)
        return team

    team = run_in_transaction(load_settings(data_dir), work)
    typer.echo(f"Team {team.name!r} <{team.email}> {'activated' if active else 'deactivated'}.")


@team_app.command("deactivate")
def team_deactivate(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Deactivate a team: it can no longer log in and its sessions end at once."""
    _set_active(email, False, data_dir)


@team_app.command("activate")
def team_activate(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Re-activate a deactivated team."""
    _set_active(email, True, data_dir)


if __name__ == "__main__":
    app()
