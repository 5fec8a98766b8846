"""One run, start to finish: claim, run untrusted code, score it trusted, record once."""

from __future__ import annotations

import logging
import time

from portal.evaluation import runs
from portal.evaluation.outcomes import judge
from worker.context import WorkerContext
from worker.kits.base import failed_run_score

logger = logging.getLogger(__name__)


class RetryableError(Exception):
    """Infrastructure trouble: Dramatiq retries the message with backoff."""


def execute_run(context: WorkerContext, run_id: int) -> str:
    settings = context.settings
    kit, runner = context.kit, context.runner  # fail here, before claiming, if misconfigured
    with context.sessions.begin() as session:
        run = runs.claim(session, run_id, context.worker_id, settings.eval_max_attempts)
    if run is None:
        return "skipped"  # already taken, finished, cancelled, or out of attempts

    try:
        source = b"".join(context.storage.get(run.storage_key))
        input_bytes = kit.generate(run.seed)
        limits = context.limits()
        last_beat = 0.0

        def heartbeat() -> bool:
            nonlocal last_beat
            if time.monotonic() - last_beat < settings.eval_heartbeat_seconds:
                return True
            last_beat = time.monotonic()
            with context.sessions.begin() as session:
                return runs.heartbeat(session, run, context.worker_id)

        result = runner.run(
            run_id=run.id,
            worker_id=context.worker_id,
            files={"solution.py": source, kit.INPUT_FILE: input_bytes},
            command=list(kit.COMMAND),
            answer_file=kit.ANSWER_FILE,
            limits=limits,
            heartbeat=heartbeat,
        )
    except Exception as exc:
        # Our failure, not the participant's (theirs is a result): give the run back.
        with context.sessions.begin() as session:
            retry = runs.release_for_retry(
                session, run, context.worker_id, str(exc), settings.eval_max_attempts
            )
        logger.warning(
            "run %s attempt %s hit an infrastructure error: %s", run.id, run.attempt, exc
        )
        if retry:
            raise RetryableError(str(exc)) from exc
        return "failed"

    if result.aborted:
        return "aborted"
    outcome = judge(kit, run.seed, input_bytes, result, limits)
    with context.sessions.begin() as session:
        written = runs.record(
            session,
            run,
            context.worker_id,
            outcome,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
            log=result.log,
            failed_run_score=failed_run_score(context.kit),
        )
    if written and context.after_result is not None:
        context.after_result()
    logger.info("run %s: %s", run.id, outcome.status if written else "no longer ours")
    return outcome.status if written else "superseded"
