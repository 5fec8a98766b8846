"""The no-Docker fallback: limits hold, and it is never chosen silently."""

import dataclasses

import pytest

from portal.core.config import Settings
from portal.evaluation.models import RunStatus
from tests.fixtures.evaluation import EMPTY_FILE, ONE_MIB_FILE, fill_work, run_in_sandbox
from worker.context import WorkerContext, choose_runner
from worker.judge import judge
from worker.kits import tsp
from worker.sandbox.base import SandboxLimits
from worker.sandbox.process_runner import ProcessRunner

LIMITS = SandboxLimits(timeout_seconds=3, memory_mib=256, log_cap_bytes=4096)
SEED = 3
INPUT = tsp.generate(SEED)


def run(source: str, limits: SandboxLimits = LIMITS):
    return run_in_sandbox(ProcessRunner(), source, limits, SEED)


def test_scores_an_example_like_docker_would():
    with open("examples/tsp_two_opt.py") as handle:
        _, outcome = run(handle.read())
    assert outcome.status == RunStatus.scored and outcome.score > 4


def test_wall_clock_timeout_kills_the_process_group():
    result, outcome = run(
        "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)\n"
    )
    assert outcome.status == RunStatus.timeout and 3000 <= result.duration_ms < 6000


def test_the_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "must-not-leak")
    result, _ = run("import os\nprint(sorted(os.environ))\n")
    assert "PORTAL_SECRET_KEY" not in result.log and "must-not-leak" not in result.log


def test_memory_is_limited():
    _, outcome = run("x = bytearray(1024 * 1024 * 1024)\n")
    assert outcome.status in (RunStatus.memory_limit, RunStatus.failed)
    assert outcome.status != RunStatus.scored


def test_files_past_the_work_limits_are_a_disk_limit_as_under_docker():
    small_work = dataclasses.replace(LIMITS, work_mib=16, work_inodes=100)
    _, too_big = run(fill_work(ONE_MIB_FILE, 20), small_work)
    _, too_many = run(fill_work(EMPTY_FILE, 150), small_work)
    expected = "Disk limit exceeded: the program wrote more than 16 MiB (or 100 files) in /work."
    assert (too_big.status, too_big.reason) == (RunStatus.disk_limit, expected)
    assert (too_many.status, too_many.reason) == (RunStatus.disk_limit, expected)


MIB = 1024 * 1024


def test_a_cpu_spin_is_accounted_as_cpu_time_close_to_its_wall_time():
    # The program spins until it has itself used a second of CPU, and says how much.
    result, _ = run(
        "import time\nwhile time.process_time() < 1.0:\n    pass\n"
        "print(round(time.process_time() * 1000))\n"
    )
    own_ms = int(result.log.split()[-1])
    cpu_ms = result.cpu_user_ms + result.cpu_system_ms
    # Its own figure plus the interpreter's start, and never more than the wall time.
    assert own_ms <= cpu_ms <= min(own_ms + 500, result.duration_ms)


def test_a_200_mib_allocation_shows_a_peak_within_ten_percent():
    big = dataclasses.replace(LIMITS, memory_mib=512)
    result, _ = run("block = b'x' * (200 * 1024 * 1024)\nprint(len(block))\n", big)
    assert 200 * MIB <= result.peak_memory_bytes <= 220 * MIB


def test_a_small_programs_peak_is_its_own_not_the_workers():
    # The worker (this test process) holds 400 MiB; a program forked from it would
    # report that as its own peak.
    held = b"w" * (400 * MIB)
    result, _ = run("print('hello')\n")
    assert len(held) == 400 * MIB
    assert result.peak_memory_bytes < 64 * MIB


def test_how_a_run_ended_and_all_it_wrote_are_reported():
    result, _ = run(
        "print('x' * 9999, flush=True)\nimport os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
    )
    assert (result.exit_code, result.exit_signal) == (-15, 15)
    # All 10 000 bytes it wrote are counted, though the kept log is cut to 4 KiB.
    assert result.output_bytes == 10_000 and result.log_truncated
    assert "bytes of output omitted" in result.log
    exited, _ = run("raise SystemExit(3)\n")
    assert (exited.exit_code, exited.exit_signal, exited.output_bytes) == (3, None, 0)


def test_a_timed_out_run_is_killed_with_its_cpu_time_still_measured():
    result, outcome = run("while True:\n    pass\n")
    assert outcome.status == RunStatus.timeout and result.exit_signal == 9
    assert 0 < result.cpu_user_ms + result.cpu_system_ms <= result.duration_ms


def test_serve_and_worker_refuse_it_unless_allowed(monkeypatch):
    settings = Settings(eval_runner="process")
    with pytest.raises(RuntimeError, match="not a sandbox"):
        choose_runner(settings)
    allowed = choose_runner(settings.model_copy(update={"eval_allow_process_runner": True}))
    assert allowed.name == "process" and allowed.is_sandbox is False


def test_auto_falls_back_to_processes_only_when_allowed(monkeypatch, tmp_path):
    # An engine address that nothing answers: what a laptop without Docker looks like.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    settings = Settings(eval_runner="auto")
    with pytest.raises(RuntimeError, match="no Docker engine is usable"):
        choose_runner(settings)
    fallback = choose_runner(settings.model_copy(update={"eval_allow_process_runner": True}))
    assert fallback.name == "process"
    with pytest.raises(Exception, match="Docker"):
        choose_runner(settings.model_copy(update={"eval_runner": "docker"}))


async def test_pages_say_plainly_when_evaluation_is_not_sandboxed(settings):
    from portal.main import create_app
    from tests.fixtures.clients import make_client

    for runner, warned in (("process", True), ("docker", False)):
        app = create_app(settings.model_copy(update={"eval_runner": runner}))
        async with app.router.lifespan_context(app), make_client(app) as client:
            page = await client.get("/login")
        assert ("not a sandbox" in page.text) is warned, runner


async def test_llm_example_reaches_the_gateway_on_loopback(
    services, tmp_path, teams, echo_upstream
):
    """Without Docker (portal dev's fallback) the run still gets its own gateway token."""
    import dataclasses

    import redis as sync_redis

    from portal.llm import run_tokens
    from tests.fixtures.evaluation import example
    from tests.fixtures.live import portal_process

    team = await teams.create()
    upstream = {"PORTAL_LLM_UPSTREAM_URL": echo_upstream.url}
    redis = sync_redis.Redis.from_url(services.redis_url)
    with portal_process(services, tmp_path, upstream) as base_url:
        # What the worker passes to a process-runner run (WorkerContext.llm_base_url).
        settings = Settings(base_url=base_url, eval_runner="process")
        context = WorkerContext(settings)
        context.__dict__["runner"] = ProcessRunner()
        assert context.llm_base_url == f"{base_url}/llm/v1"
        token = run_tokens.issue(redis, team.id, None, timeout_seconds=10)
        limits = dataclasses.replace(
            LIMITS,
            environment={"OPENAI_BASE_URL": context.llm_base_url, "OPENAI_API_KEY": token},
        )
        result = ProcessRunner().run(
            run_id=2,
            worker_id="t",
            files={"solution.py": example("tsp_llm_hint.py"), "input.json": INPUT},
            command=tsp.COMMAND,
            answer_file="answer.json",
            limits=limits,
            heartbeat=lambda: True,
        )
    redis.close()
    assert "model said: echo: Which city" in result.log, result.log
    assert judge(tsp, SEED, INPUT, result, limits).status == RunStatus.scored


async def test_a_killed_runs_call_in_flight_frees_its_slot_under_the_process_runner_too(
    settings, client, teams, services
):
    """The process runner's runs get a gateway token too (on loopback), and the worker
    frees their slots the same way."""
    from portal.core.background_server import BackgroundServer
    from portal.main import create_gateway_app
    from tests.fixtures.evaluation import running_eval_worker
    from tests.fixtures.llm_runs import a_killed_runs_call_frees_its_slot

    lease_seconds = 300
    gateway_app = create_gateway_app(
        settings.model_copy(update={"llm_lease_seconds": lease_seconds})
    )
    gateway = BackgroundServer(gateway_app, "127.0.0.1", 0, "test-llm-gateway").start()
    worker_settings = settings.model_copy(
        update={
            "eval_runner": "process",
            "eval_allow_process_runner": True,
            "eval_timeout_seconds": 5,
            "base_url": gateway.address,  # where the worker points a run's OPENAI_BASE_URL
        }
    )
    try:
        with running_eval_worker(worker_settings):
            await a_killed_runs_call_frees_its_slot(
                client, teams, services.database_url, 5, lease_seconds
            )
    finally:
        gateway.stop()
