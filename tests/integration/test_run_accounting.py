"""What a run cost, measured from its container's cgroup by the sandbox's runguard.

Known programs against the real Docker sandbox: an allocation of about 200 MiB, a CPU
spin with and without a CPU cap, a flood of output, a signal."""

import dataclasses

import pytest

from tests.fixtures.evaluation import run_in_sandbox
from worker.sandbox.base import SandboxLimits
from worker.sandbox.docker_runner import DockerRunner

MIB = 1024 * 1024
LIMITS = SandboxLimits(timeout_seconds=15, memory_mib=400, work_mib=64, tmpfs_mib=8)


@pytest.fixture(scope="module")
def runner(eval_image, docker_client):
    return DockerRunner(eval_image, client=docker_client)


def test_a_200_mib_allocation_shows_a_peak_within_ten_percent(runner):
    allocate = (
        "import time\nblock = bytearray(200 * 1024 * 1024)\n"
        "for at in range(0, len(block), 4096):\n    block[at] = 1\n"  # touch every page
        "time.sleep(0.2)\n"
    )
    result, _ = run_in_sandbox(runner, allocate, LIMITS)
    assert result.exit_code == 0, result.log
    assert abs(result.peak_memory_bytes - 200 * MIB) <= 20 * MIB, result.peak_memory_bytes


def test_a_small_program_shows_a_small_peak(runner):
    result, _ = run_in_sandbox(runner, "print('hello')\n", LIMITS)
    assert result.peak_memory_bytes < 40 * MIB, result.peak_memory_bytes
    assert result.cpu_user_ms is not None and result.cpu_user_ms < 500


def spin(cpu_seconds: float) -> str:
    """Spins until it has used this much CPU time (however busy the machine is), then
    prints what it measured itself."""
    return (
        "import time\n"
        f"while time.process_time() < {cpu_seconds}:\n    pass\n"
        "print(int(time.process_time() * 1000))\n"
    )


def test_cpu_time_is_what_the_program_spent(runner):
    result, _ = run_in_sandbox(runner, spin(1.5), LIMITS)
    spent_ms = int(result.log.split()[-1])
    cpu = result.cpu_user_ms + result.cpu_system_ms
    # Its own count is the floor; the cgroup adds only the moments after its last look.
    assert spent_ms <= cpu + 20 <= spent_ms * 1.1 + 120, (cpu, spent_ms)
    # Under a one-CPU cap, a spinner gets at most its wall time (all of it on an idle
    # machine; less when other work shares the host).
    assert cpu <= result.duration_ms + 50, (cpu, result.duration_ms)


def test_a_cpu_spin_under_half_a_cpu_gets_at_most_half_its_wall_time(runner):
    half = dataclasses.replace(LIMITS, cpus=0.5)
    result, _ = run_in_sandbox(runner, spin(1.0), half)
    cpu = result.cpu_user_ms + result.cpu_system_ms
    assert cpu >= 1000
    # The cap holds (a little slack for the scheduler's 100 ms accounting period).
    assert cpu <= 0.5 * result.duration_ms + 150, (cpu, result.duration_ms)


def test_every_byte_of_output_is_counted_though_the_log_is_cut(runner):
    flood = (
        "import sys\nfor _ in range(50):\n    sys.stdout.write('y' * 99_999 + '\\n')\n"
        "sys.stderr.write('last words\\n')\n"
    )
    result, _ = run_in_sandbox(runner, flood, LIMITS)
    assert result.output_bytes == 50 * 100_000 + len("last words\n")
    assert result.log_truncated and result.log.rstrip().endswith("last words")
    assert f"{50 * 100_000 + 11 - LIMITS.log_cap_bytes} bytes of output omitted" in result.log


def test_a_signal_is_reported_as_the_signal(runner):
    result, outcome = run_in_sandbox(
        runner, "import os, signal\nos.kill(os.getpid(), 11)\n", LIMITS
    )
    assert result.exit_signal == 11 and result.exit_code == 139
    assert outcome.status == "failed" and "signal 11 (SIGSEGV)" in outcome.reason
    clean, _ = run_in_sandbox(runner, "raise SystemExit(4)\n", LIMITS)
    assert clean.exit_signal is None and clean.exit_code == 4


def test_a_timed_out_run_still_has_its_figures(runner):
    short = dataclasses.replace(LIMITS, timeout_seconds=1.5)
    result, outcome = run_in_sandbox(runner, spin(60), short)
    assert result.timed_out and outcome.status == "timeout"
    assert 1500 <= result.duration_ms < 2500
    cpu = result.cpu_user_ms + result.cpu_system_ms
    assert 0 < cpu <= result.duration_ms + 50
    assert result.exit_signal == 9 and result.peak_memory_bytes > 0
