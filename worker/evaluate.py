"""One run, start to finish: claim, run untrusted code, score it trusted, record once."""

from __future__ import annotations

import logging
import time

from portal.evaluation import runs
from portal.evaluation.outcomes import judge
from portal.llm import run_tokens
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

    llm_token = None
    try:
        source = b"".join(context.storage.get(run.storage_key))
        input_bytes = kit.generate(run.seed)
        environment = {}
        if context.llm_base_url:
            # The standard OpenAI client reads these two: the submission's LLM calls go
            # through the gateway, on the team's limit, attributed to this run.
            llm_token = run_tokens.issue(
                context.redis, run.team_id, run.batch_submission_id, settings.eval_timeout_seconds
            )
            environment = {"OPENAI_BASE_URL": context.llm_base_url, "OPENAI_API_KEY": llm_token}
        limits = context.limits(environment)
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
    finally:
        if llm_token is not None:
            _revoke_quietly(context, llm_token)

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


def _revoke_quietly(context: WorkerContext, token: str) -> None:
    # If Redis is away the token still expires on its own shortly after the deadline.
    try:
        run_tokens.revoke(context.redis, token)
    except Exception as exc:
        logger.warning("could not revoke a run's LLM token (it expires by itself): %s", exc)
