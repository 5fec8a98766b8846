"""`portal dev`, `portal serve` and `portal gateway`: running the web app."""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from portal.cli.common import (
    DataDirOption,
    install_sigterm_as_exit,
    load_settings,
    run_in_transaction,
    use_metrics_dir,
    write_private,
)
from portal.cli.evaluation import queue_prefetch
from portal.core.config import Settings, get_settings
from portal.core.logging import configure_logging
from portal.core.services import backing_services

if TYPE_CHECKING:
    from portal.seed import IssuedToken


def dev(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    data_dir: DataDirOption = None,
) -> None:
    """Everything in one process: embedded PostgreSQL and Redis, local storage, a worker
    and the portal. Seeds an admin and demo teams on first start."""
    # The laptop default: evaluate in Docker when an engine answers, otherwise in plain
    # processes, which the worker announces loudly as not sandboxed.
    settings = load_settings(
        data_dir, base_url=f"http://{host}:{port}", eval_allow_process_runner=True
    )
    configure_logging(settings.log_level, json_output=False)
    install_sigterm_as_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    use_metrics_dir(settings, "dev")  # before the app's modules import prometheus-client
    settings = settings.model_copy(update={"metrics_token": _dev_metrics_token(settings)})

    import dramatiq
    import uvicorn

    from portal.core import migrations
    from portal.main import create_app
    from portal.seed import seed_demo_data
    from worker.tasks import setup

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
            _print_metrics_access(settings, f"http://{host}:{port}/metrics")
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
DEV_METRICS_TOKEN_FILE = "metrics-token"


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
    write_private(tokens_file, "\n".join(lines) + "\n")
    typer.secho(f"\nDemo accounts (tokens are shown once; also saved to {tokens_file}):", bold=True)
    for line in lines:
        typer.echo("  " + line)


def _dev_metrics_token(settings: Settings) -> SecretStr:
    """PORTAL_METRICS_TOKEN if set, else one made up on the first start and kept in the
    data directory, so a local Prometheus keeps working across restarts."""
    if settings.metrics_token is not None:
        return settings.metrics_token
    token_file = settings.data_dir / DEV_METRICS_TOKEN_FILE
    token = token_file.read_text().strip() if token_file.exists() else ""
    if not token:
        token = secrets.token_urlsafe(32)
        write_private(token_file, token + "\n")
    return SecretStr(token)


def _print_metrics_access(settings: Settings, url: str) -> None:
    assert settings.metrics_token is not None  # _dev_metrics_token set it
    token = settings.metrics_token.get_secret_value()
    typer.secho("\nMetrics (Prometheus), with the token PORTAL_METRICS_TOKEN:", bold=True)
    typer.echo(f"  curl -H 'Authorization: Bearer {token}' {url}")


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
    install_sigterm_as_exit()
    use_metrics_dir(settings, "serve")
    with backing_services(settings) as urls:
        env = {
            "PORTAL_DATABASE_URL": urls.database_url,
            "PORTAL_REDIS_URL": urls.redis_url,
            # The workers find the same data directory (objects, metrics) as this one.
            "PORTAL_DATA_DIR": str(settings.data_dir),
        }
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


def gateway(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    data_dir: DataDirOption = None,
) -> None:
    """Serve only the LLM gateway (/llm/*): the listener evaluation sandboxes reach on
    PORTAL_EVAL_NETWORK. Nothing else of the portal is exposed on it."""
    import uvicorn

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_json)
    settings.check_safe_for_production()
    install_sigterm_as_exit()
    use_metrics_dir(settings, "gateway")  # its calls count on the portal's /metrics

    from portal.main import create_gateway_app

    with backing_services(settings) as urls:
        settings = settings.model_copy(
            update={"database_url": urls.database_url, "redis_url": urls.redis_url}
        )
        uvicorn.run(
            create_gateway_app(settings), host=host, port=port, log_config=None, access_log=False
        )
