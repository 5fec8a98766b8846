"""One run, start to finish: claim, run untrusted code, score it trusted, record once."""

from __future__ import annotations

import logging
import time

import redis
import sqlalchemy as sa

from portal.core import metrics
from portal.core.storage import ObjectNotFound, StorageUnavailable
from portal.core.text import exception_summary
from portal.evaluation import runs
from portal.evaluation.models import RunStatus
from portal.llm import run_tokens
from worker.context import WorkerContext
from worker.judge import judge
from worker.kits.base import failed_run_score
from worker.sandbox.base import SandboxError, SandboxLimits, SandboxResult

logger = logging.getLogger(__name__)


class RetryableError(Exception):
    """Infrastructure trouble: Dramatiq retries the message with backoff."""


class RunFailure(Exception):
    """Something other than the submission stopped a run.

    The message is a sentence a participant or an organizer can act on (never a repr or a
    traceback); `retryable` says whether another attempt can help.
    """

    def __init__(self, sentence: str, *, retryable: bool) -> None:
        super().__init__(sentence)
        self.retryable = retryable


def describe_failure(exc: Exception) -> RunFailure:
    """Infrastructure that may come back (engine, storage, database, Redis, I/O) is worth
    another attempt; anything else would fail the same way again."""
    if isinstance(exc, ObjectNotFound):
        return RunFailure(
            "The submission's file is missing from storage, so it could not run. An "
            "organizer must restore the file (or the team upload it again) and re-run it.",
            retryable=False,
        )
    if isinstance(exc, StorageUnavailable):
        return RunFailure(f"Object storage could not be reached ({exc}).", retryable=True)
    if isinstance(exc, SandboxError):
        return RunFailure(f"The sandbox could not run it ({exc}).", retryable=True)
    # Connection trouble, a pool with no free connection, or a server that cannot write
    # right now (InternalError: a read-only failover): all pass with time.
    database_away = sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.InternalError
    if isinstance(exc, database_away | sa.exc.TimeoutError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    ):
        return RunFailure("The database could not be reached or written.", retryable=True)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return RunFailure("Redis could not be reached.", retryable=True)
    if isinstance(exc, OSError):
        return RunFailure(f"The worker hit an I/O error ({exc}).", retryable=True)
    return RunFailure(
        f"The evaluation stopped on an internal error ({exception_summary(exc)}); "
        "this is not the submission's fault. "
        "An organizer can re-run it.",
        retryable=False,
    )


def execute_run(context: WorkerContext, run_id: int) -> str:
    settings = context.settings
    _ = context.kit, context.runner  # fail here, before claiming, if misconfigured
    with context.sessions.begin() as session:
        run = runs.claim(session, run_id, context.worker_id, settings.eval_max_attempts)
    if run is None:
        return "skipped"  # already taken, finished, cancelled, or out of attempts
    try:
        judged = _run_and_judge(context, run)
        if judged is None:
            return "aborted"
        result, outcome, limits = judged
        return _record(context, run, outcome, result, limits)
    except Exception as exc:
        failure = describe_failure(exc)
        # A traceback only for what we did not foresee: that is a bug to fix.
        logger.warning(
            "run %s attempt %s: %s", run.id, run.attempt, failure, exc_info=not failure.retryable
        )
        if not failure.retryable:
            # Another attempt would end the same way: this is the run's result, now.
            return _record(context, run, runs.Outcome(RunStatus.failed, str(failure)))
        with context.sessions.begin() as session:
            retry = runs.release_for_retry(
                session, run, context.worker_id, str(failure), settings.eval_max_attempts
            )
        if retry:
            raise RetryableError(str(failure)) from exc
        return "failed"


def _run_and_judge(
    context: WorkerContext, run: runs.ClaimedRun
) -> tuple[SandboxResult, runs.Outcome, SandboxLimits] | None:
    """Run the submission in the sandbox and score it; None if it was stopped midway."""
    settings, kit = context.settings, context.kit
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

        result = context.runner.run(
            run_id=run.id,
            worker_id=context.worker_id,
            files={"solution.py": source, kit.INPUT_FILE: input_bytes},
            command=list(kit.COMMAND),
            answer_file=kit.ANSWER_FILE,
            limits=limits,
            heartbeat=heartbeat,
        )
    finally:
        # The runner returns only once the submission has ended (its container exited or
        # was removed; under the process runner, its program exited or was killed), so a
        # call of the run still in flight is an orphan: revoking frees its slot before
        # the result is recorded, and shuts out whatever the process runner's program
        # may have left running.
        if llm_token is not None:
            _revoke_quietly(context, llm_token, run.team_id)
    if result.aborted:
        return None
    return result, judge(kit, run.seed, input_bytes, result, limits), limits


def _record(
    context: WorkerContext,
    run: runs.ClaimedRun,
    outcome: runs.Outcome,
    result: SandboxResult | None = None,
    limits: SandboxLimits | None = None,
) -> str:
    cost = None
    if result is not None:
        cost = runs.RunCost(
            cpu_user_ms=result.cpu_user_ms,
            cpu_system_ms=result.cpu_system_ms,
            peak_memory_bytes=result.peak_memory_bytes,
            exit_signal=result.exit_signal,
            output_bytes=result.output_bytes,
            output_truncated=result.log_truncated,
            limits=limits.shown() if limits else {},
        )
    with context.sessions.begin() as session:
        written = runs.record(
            session,
            run,
            context.worker_id,
            outcome,
            exit_code=result.exit_code if result else None,
            duration_ms=result.duration_ms if result else 0,
            log=result.log if result else "",
            failed_run_score=failed_run_score(context.kit),
            cost=cost,
        )
    if written:
        metrics.observe_run(outcome.status, result.duration_ms / 1000 if result else None)
    if written and context.after_result is not None:
        context.after_result()
    logger.info("run %s: %s", run.id, outcome.status if written else "no longer ours")
    return outcome.status if written else "superseded"


def _revoke_quietly(context: WorkerContext, token: str, team_id: int) -> None:
    # If Redis is away the token still expires on its own shortly after the deadline,
    # and the run's parallel slots with their leases.
    try:
        run_tokens.revoke(context.redis, token, team_id)
    except Exception as exc:
        logger.warning("could not revoke a run's LLM token (it expires by itself): %s", exc)
