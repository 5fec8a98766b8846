"""`portal worker` and `portal eval-image`: running and packaging evaluations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Annotated

import typer

from portal.cli.common import DataDirOption, fail, load_settings, use_metrics_dir
from portal.core.config import get_settings
from portal.core.services import backing_services


def queue_prefetch(threads: int) -> int:
    """One message per thread plus one waiting: the next run starts the moment a thread
    frees up (Dramatiq backs off polling while all slots are busy), and a worker never
    holds more than one run that another worker could have taken. If a worker dies with
    that one unclaimed, the watchdog re-sends it."""
    return threads + 1


def worker(
    processes: Annotated[int | None, typer.Option(help="Worker processes")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per process")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the Dramatiq worker that executes evaluation runs."""
    settings = load_settings(data_dir)
    # Runs are counted by the worker processes and read by the portal's /metrics.
    use_metrics_dir(settings, "worker")
    from worker.context import choose_runner

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
            PORTAL_DATA_DIR=str(settings.data_dir),
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
