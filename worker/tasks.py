"""Declare the actors on a broker. The CLI entry (worker.actors), `portal dev` and the
tests all go through `setup`, each with its own settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import dramatiq
import sqlalchemy as sa
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from portal.competition.phases import audit_phase_change
from portal.core.config import Settings
from portal.core.time import utcnow
from portal.evaluation import runs, workers
from portal.evaluation.queue import PUBLIC_QUEUE, PUBLIC_RUN_ACTOR, QUEUE, RUN_ACTOR
from portal.leaderboard import refresh as leaderboard_refresh
from portal.leaderboard.refresh import REFRESH_ACTOR
from worker.context import WorkerContext
from worker.evaluate import RetryableError, execute_run
from worker.kits.base import failed_run_score

logger = logging.getLogger(__name__)
# Sends a run's message to its queue again: (run id, whether it is a public run).
Enqueue = Callable[[int, bool], None]
# Only one watchdog sweep at a time across every worker process.
WATCHDOG_LOCK = 7_341_001


def watchdog_sweep(context: WorkerContext, enqueue: Enqueue) -> tuple[list[int], list[int]]:
    settings = context.settings
    with context.sessions.begin() as session:
        got_lock = session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": WATCHDOG_LOCK}
        ).scalar()
        if not got_lock:
            return [], []
        requeued, given_up = runs.requeue_stale(
            session,
            settings.eval_stale_after_seconds,
            settings.eval_max_attempts,
            failed_run_score(context.kit),
        )
        stalled = runs.stalled_queued_runs(session, settings.eval_stale_after_seconds)
        public = runs.public_run_ids(session, requeued + stalled)
        # The clock moves the competition too (start, freeze, end): audited once each.
        phase_moved = audit_phase_change(session, utcnow()) is not None
    runner = context.runner
    for run_id in requeued + given_up:
        # Kill whatever the lost attempt left running before the run starts again.
        runner.kill_run_containers(run_id)
    for run_id in requeued + stalled:
        # Back to the queue it came from: an upload's score keeps its priority.
        enqueue(run_id, run_id in public)
    if (given_up or phase_moved) and context.after_result is not None:
        context.after_result()
    if requeued or given_up or stalled:
        logger.warning(
            "watchdog: re-queued %s, gave up on %s, re-sent %s", requeued, given_up, stalled
        )
    return requeued, given_up


def remove_leftover_containers(context: WorkerContext) -> int:
    """At boot: containers whose run is not alive under some worker are leftovers."""
    with context.sessions() as session:
        alive = runs.live_run_ids(session, context.settings.eval_stale_after_seconds)
    removed = context.runner.remove_leftovers(alive)
    if removed:
        logger.warning("removed %s leftover evaluation containers", removed)
    return removed


class Watchdog(Middleware):
    """Runs a sweep every few seconds in each worker process (the advisory lock makes one
    of them do the work), reports the process alive (portal.evaluation.workers) as often,
    and cleans leftovers when the worker boots."""

    def __init__(self, context: WorkerContext, enqueue: Enqueue, interval: float) -> None:
        self.context = context
        self.enqueue = enqueue
        self.interval = interval
        self.stopping = threading.Event()
        self.started_at = utcnow()
        self.threads = 0

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.threads = worker.worker_threads
        self._beat()
        try:
            remove_leftover_containers(self.context)
        except Exception:
            logger.exception("could not clean leftover containers")
        threading.Thread(target=self._loop, name="portal-watchdog", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()
        try:
            workers.forget(self.context.redis, self.context.worker_id)
        except Exception as exc:  # Redis away: the entry goes stale by itself
            logger.warning("could not leave the worker list: %s", exc)

    def _beat(self) -> None:
        try:
            workers.beat(
                self.context.redis,
                worker_id=self.context.worker_id,
                threads=self.threads,
                runner=self.context.runner.name,
                started_at=self.started_at,
            )
        except Exception:
            logger.exception("could not report this worker as alive")

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            self._beat()
            try:
                watchdog_sweep(self.context, self.enqueue)
            except Exception:
                logger.exception("watchdog sweep failed")


def _retry_infrastructure_only(retries: int, exception: Exception) -> bool:
    # A participant's crash is a result, recorded by execute_run; only our own
    # trouble (engine, storage, database) is worth another attempt.
    return isinstance(exception, RetryableError)


def setup(
    settings: Settings, broker: RedisBroker | None = None
) -> tuple[RedisBroker, WorkerContext]:
    broker = broker or RedisBroker(url=settings.redis_url)
    dramatiq.set_broker(broker)
    context = WorkerContext(settings)
    time_limit_ms = int((settings.eval_timeout_seconds + 120) * 1000)

    def run_actor(actor_name: str, queue_name: str, priority: int) -> dramatiq.Actor[[int], None]:
        def run(run_id: int) -> None:
            execute_run(context, run_id)

        declare = dramatiq.actor(
            actor_name=actor_name,
            queue_name=queue_name,
            broker=broker,
            priority=priority,
            max_retries=settings.eval_max_attempts,
            min_backoff=1_000,
            max_backoff=30_000,
            time_limit=time_limit_ms,
            retry_when=_retry_infrastructure_only,
        )
        return declare(run)

    # Admin batches and the final; uploads' public scores come from their own queue, and
    # a worker holding messages of both takes those first (lower number, first).
    run_evaluation = run_actor(RUN_ACTOR, QUEUE, priority=10)
    run_public_evaluation = run_actor(PUBLIC_RUN_ACTOR, PUBLIC_QUEUE, priority=0)

    def enqueue(run_id: int, public: bool) -> None:
        (run_public_evaluation if public else run_evaluation).send(run_id)

    @dramatiq.actor(
        actor_name=REFRESH_ACTOR, queue_name=QUEUE, broker=broker, max_retries=3, time_limit=300_000
    )
    def refresh_leaderboard() -> None:
        if not leaderboard_refresh.refresh(context.engine, context.redis):
            # Another refresh is running; go again after it, so this window's results show.
            refresh_leaderboard.send_with_options(delay=leaderboard_refresh.DEBOUNCE_MS // 2)

    def request_refresh() -> None:
        if leaderboard_refresh.should_schedule(context.redis):
            refresh_leaderboard.send_with_options(delay=leaderboard_refresh.DEBOUNCE_MS)

    context.after_result = request_refresh

    interval = min(5.0, settings.eval_stale_after_seconds / 3)
    broker.add_middleware(Watchdog(context, enqueue, interval))
    return broker, context
