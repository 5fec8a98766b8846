"""Nothing a submission prints or answers can break a run: through the real worker and
Docker, every run ends after one attempt with a recorded status and a reason."""

import itertools
import json

import psycopg
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from portal.core.db import psycopg_conninfo
from portal.evaluation import runs
from portal.evaluation.models import RunStatus
from tests.fixtures.competition import configure, wait_for_public_score
from tests.fixtures.evaluation import run_batch, running_eval_worker, upload
from tests.fixtures.factories import browser_login
from worker.judge import judge
from worker.kits import tsp
from worker.sandbox.base import SandboxLimits, SandboxResult, cap_log

# A submission that prints `output`, writes `answer` (None: writes none) and exits.
PRINT_AND_ANSWER = """import json, sys
sys.stdout.buffer.write({output!r})
sys.stdout.flush()
answer = {answer!r}
if answer == b"<identity tour>":
    cities = json.load(open(sys.argv[1]))["cities"]
    answer = json.dumps({{"tour": list(range(len(cities)))}}).encode()
if answer is not None:
    open(sys.argv[2], "wb").write(answer)
sys.exit({exit_code})
"""
BINARY_OUTPUT = bytes(range(256)) * 4 + b"\x1b[31mred\x1b[0m\x1b]0;title\x07\xff\xfe\x00"
HUGE_INTEGER = b'{"tour": [' + b"7" * 5000 + b"]}"
DEEP_NESTING = b"[" * 200_000 + b"]" * 200_000
ENDED = {"scored", "failed", "invalid_answer", "timeout", "memory_limit"}


def solution(output: bytes = b"", answer: bytes | None = None, exit_code: int = 0) -> bytes:
    return PRINT_AND_ANSWER.format(output=output, answer=answer, exit_code=exit_code).encode()


async def evaluate(client, teams, solutions: list[bytes]) -> list[dict]:
    """Each solution from its own team, all in one batch on one seed; the batch's runs."""
    admin = await teams.admin()
    submission_ids = [
        await upload(client, await teams.create(), f"s{number}.py", source)
        for number, source in enumerate(solutions)
    ]
    batch = await run_batch(client, admin, seeds=[1], selection="unevaluated")
    assert batch["status"] == "finished"
    return sorted(batch["runs"], key=lambda run: submission_ids.index(run["submission_id"]))


def stored_logs(database_url: str) -> list[str]:
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        return [row[0] for row in conn.execute("SELECT log FROM evaluation_run")]


async def test_binary_output_with_nul_bytes_is_a_result_the_participant_sees(
    client, teams, eval_worker, services
):
    crashing = solution(output=BINARY_OUTPUT + b"\nlast words\n", exit_code=3)
    chatty = solution(output=BINARY_OUTPUT, answer=b"<identity tour>")
    crashed, scored = await evaluate(client, teams, [crashing, chatty])
    assert crashed["status"] == "failed" and crashed["attempts"] == 1
    assert crashed["reason"].startswith("Exited with code 3.")
    assert "last words" in crashed["reason"] and "red" in crashed["reason"]
    assert scored["status"] == "scored" and scored["score"] == 1.0 and scored["attempts"] == 1
    for log in stored_logs(services.database_url):
        assert "red" in log and "\x00" not in log and "\x1b" not in log

    # The team sees the exit code and the output on its submission's page: its public
    # evaluation (an admin batch is the organizers' view).
    owner = await teams.create()
    await configure(client, await teams.admin(), public_seeds=[2])
    submission_id = await upload(client, owner, "crash.py", crashing)
    detail = await wait_for_public_score(client, owner, submission_id)
    assert detail["public_status"] == "failed"
    await browser_login(client, owner)
    page = await client.get(f"/submissions/{submission_id}")
    assert "Exited with code 3." in page.text and "last words" in page.text


async def test_answers_the_scorer_cannot_parse_are_invalid_answers_after_one_attempt(
    client, teams, eval_worker
):
    huge, deep = await evaluate(
        client, teams, [solution(answer=HUGE_INTEGER), solution(answer=DEEP_NESTING)]
    )
    assert (huge["status"], huge["attempts"]) == ("invalid_answer", 1)
    assert huge["reason"] == (
        "Invalid answer: answer.json has a number 5000 characters long; the limit is 100."
    )
    assert (deep["status"], deep["attempts"]) == ("invalid_answer", 1)
    assert deep["reason"] == (
        "Invalid answer: answer.json is nested more than 64 levels deep "
        "(lists or objects inside each other)."
    )


async def test_a_submission_missing_from_storage_fails_once_with_a_sentence_to_act_on(
    client, teams, eval_worker, services, settings
):
    admin = await teams.admin()
    submission_id = await upload(client, await teams.create(), "lost.py", solution())
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        (key,) = conn.execute(
            "SELECT storage_key FROM submission WHERE id = %s", (submission_id,)
        ).fetchone()
    (settings.storage_local_dir / key).unlink()
    batch = await run_batch(client, admin, seeds=[1])
    (run,) = batch["runs"]
    assert (run["status"], run["attempts"]) == ("failed", 1)
    assert run["reason"] == (
        "The submission's file is missing from storage, so it could not run. An organizer "
        "must restore the file (or the team upload it again) and re-run it."
    )


NAMED = {
    "binary output": BINARY_OUTPUT,
    "nul output": b"\x00" * 300,
    "huge integer": HUGE_INTEGER,
    "deep nesting": DEEP_NESTING,
    "identity tour": b"<identity tour>",
    "repeated city": b'{"tour": [0, 0]}',
}


def named(name: str) -> bytes:  # keeps hypothesis's report of a failing case short
    return NAMED[name]


outputs = st.binary(max_size=400) | st.sampled_from(["binary output", "nul output"]).map(named)
answers = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.sampled_from(["huge integer", "deep nesting", "identity tour", "repeated city"]).map(named),
    st.builds(lambda tour: json.dumps({"tour": tour}).encode(), st.lists(st.integers())),
)
cases = st.builds(solution, outputs, answers, st.sampled_from([0, 0, 1, 3]))


# Each case is a container (about a second): few examples, several cases per batch.
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(solutions=st.lists(cases, min_size=3, max_size=3))
async def test_any_output_and_any_answer_end_after_one_attempt_with_a_status_and_reason(
    client, teams, eval_settings, services, solutions
):
    # A worker per example: its threads must not run while hypothesis generates data.
    with running_eval_worker(eval_settings):
        ended = await evaluate(client, teams, solutions)
    for run in ended:
        assert run["status"] in ENDED and run["attempts"] == 1, run
        assert run["status"] == "scored" or run["reason"], run
    for log in stored_logs(services.database_url):
        assert "\x00" not in log


# Without Docker: what the sandbox could hand over, written to the real database.
LIMITS = SandboxLimits(log_cap_bytes=4096)
INPUT = tsp.generate(1)


def running_run(connection: sa.Connection, team_id: int, number: int) -> runs.ClaimedRun:
    """A run in a running batch, claimed by worker "w" (attempt 1)."""

    def insert(sql: str, **values) -> int:
        return connection.execute(sa.text(sql + " RETURNING id"), values).scalar_one()

    batch_id = insert(
        "INSERT INTO evaluation_batch (name, seeds, selection, status, started_at, kit) "
        "VALUES ('generated', '{1}', 'final_picks', 'running', now(), 'tsp')"
    )
    submission_id = insert(
        "INSERT INTO submission (team_id, sha256, size_bytes, filename, storage_key, note, "
        "is_final, created_at) VALUES (:team, :sha, 1, 's.py', 'k', '', false, now())",
        team=team_id,
        sha=f"{number:064d}",
    )
    batch_submission_id = insert(
        "INSERT INTO batch_submission (batch_id, submission_id, team_id, status) "
        "VALUES (:batch, :submission, :team, 'running')",
        batch=batch_id,
        submission=submission_id,
        team=team_id,
    )
    run_id = insert(
        "INSERT INTO evaluation_run (batch_id, batch_submission_id, seed, status, "
        "queue_position, attempts, worker_id, heartbeat_at, started_at) "
        "VALUES (:batch, :bs, 1, 'running', 0, 1, 'w', now(), now())",
        batch=batch_id,
        bs=batch_submission_id,
    )
    return runs.ClaimedRun(run_id, 1, 1, batch_id, batch_submission_id, "k", team_id)


_numbers = itertools.count()
details = st.recursive(
    st.none() | st.floats() | st.integers(-(2**60), 2**60) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    output=st.binary(max_size=6000),
    answer=st.none() | st.binary(max_size=200) | st.just(DEEP_NESTING),
    exit_code=st.sampled_from([0, 1, 139, None]),
    reason=st.text() | st.binary().map(lambda raw: raw.decode("latin-1")),
    scorer_details=details,
)
async def test_whatever_the_sandbox_hands_over_is_recorded_once_and_safely(
    teams, services, output, answer, exit_code, reason, scorer_details
):
    team = await teams.create()
    log, _ = cap_log(output, LIMITS.log_cap_bytes)
    result = SandboxResult(exit_code=exit_code, duration_ms=5, log=log, answer=answer)
    judged = judge(tsp, 1, INPUT, result, LIMITS)
    engine = sa.create_engine(services.database_url)
    try:
        for outcome in (
            judged,
            runs.Outcome(RunStatus.invalid_answer, reason, None, scorer_details),
        ):
            with Session(engine) as session, session.begin():
                run = running_run(session.connection(), team.id, next(_numbers))
                assert runs.record(
                    session,
                    run,
                    "w",
                    outcome,
                    exit_code=exit_code,
                    duration_ms=5,
                    log=log + reason,
                    failed_run_score=0.0,
                )
            with engine.connect() as connection:
                status, stored_reason, stored_log = connection.execute(
                    sa.text("SELECT status, reason, log FROM evaluation_run WHERE id = :id"),
                    {"id": run.id},
                ).one()
            assert status == outcome.status
            assert "\x00" not in stored_log and "\x00" not in (stored_reason or "")
        assert judged.status == RunStatus.scored or judged.reason
    finally:
        engine.dispose()


async def test_a_program_killed_by_a_signal_is_told_which_signal_not_a_shell_exit_code(
    client, teams, eval_worker
):
    # A segfault (native code, ctypes) and an abort (a failed C assertion) end the
    # program by signal; "exit code 139" is the shell's way of saying it, not the run's.
    crash = (
        "import os, signal, sys\nprint('about to crash', flush=True)\nos.kill(os.getpid(), {})\n"
    )
    segfault, abort = await evaluate(
        client,
        teams,
        [crash.format("signal.SIGSEGV").encode(), crash.format("signal.SIGABRT").encode()],
    )
    for run, number, name in ((segfault, 11, "SIGSEGV"), (abort, 6, "SIGABRT")):
        assert run["status"] == "failed" and run["exit_signal"] == number
        assert run["reason"].startswith(f"Killed by signal {number} ({name})."), run["reason"]
        assert "about to crash" in run["reason"]
