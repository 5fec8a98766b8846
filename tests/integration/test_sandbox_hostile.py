"""Hostile submissions against the real Docker sandbox. Network checks only target
servers this test starts itself."""

import dataclasses
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from portal.evaluation.models import RunStatus
from tests.fixtures.evaluation import (
    EMPTY_FILE,
    ONE_MIB_FILE,
    eval_containers_left,
    fill_work,
    run_in_sandbox,
)
from tests.fixtures.servers import all_interfaces_http_server
from worker.kits import tsp
from worker.sandbox.base import SandboxLimits
from worker.sandbox.docker_runner import DockerRunner
from worker.sandbox.llm_relay import gateway_address

SEED = 7
INPUT = tsp.generate(SEED)
LIMITS = SandboxLimits(
    timeout_seconds=4,
    memory_mib=96,
    pids_limit=32,
    tmpfs_mib=8,
    log_cap_bytes=16 * 1024,
    answer_cap_bytes=64 * 1024,
)


@pytest.fixture(scope="module")
def runner(eval_image, docker_client):
    return DockerRunner(eval_image, client=docker_client)


def run(runner, source: str, limits: SandboxLimits = LIMITS):
    return run_in_sandbox(runner, source, limits, SEED)


def no_eval_containers(docker_client) -> bool:
    return not eval_containers_left(docker_client)


def test_an_infinite_loop_times_out_and_the_container_is_gone(runner, docker_client):
    result, outcome = run(runner, "while True:\n    pass\n")
    assert result.timed_out and outcome.status == RunStatus.timeout
    assert "after 4 s" in outcome.reason
    assert 4000 <= result.duration_ms < 9000
    assert no_eval_containers(docker_client)


def test_a_memory_hog_is_a_memory_limit_result(runner):
    result, outcome = run(runner, "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n")
    assert outcome.status == RunStatus.memory_limit, (outcome, result.exit_code, result.log)
    assert "96 MiB" in outcome.reason


def test_a_fork_bomb_is_contained_and_the_next_run_works(runner, docker_client):
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    _, outcome = run(runner, bomb)
    assert outcome.status in (RunStatus.timeout, RunStatus.failed)
    assert no_eval_containers(docker_client)
    _, after = run(runner, Path("examples/tsp_nearest_neighbour.py").read_text())
    assert after.status == RunStatus.scored


def test_a_flood_of_output_is_capped_and_the_worker_stays_small(runner):
    flood = (
        "import sys\nchunk = 'x' * 1_000_000 + '\\n'\nfor _ in range(100):\n"
        "    sys.stdout.write(chunk)\nprint('the end')\n"
    )
    before = psutil.Process().memory_info().rss
    result, _ = run(runner, flood)
    grown = psutil.Process().memory_info().rss - before
    assert result.log_truncated
    assert len(result.log) < LIMITS.log_cap_bytes + 200
    assert "omitted" in result.log
    assert grown < 40 * 1024 * 1024, f"worker memory grew by {grown} bytes"


def test_filling_tmp_is_contained(runner):
    # Many 1 MB files: the per-file size cap is not what stops it, the tmpfs size is.
    fill = (
        "written = 0\n"
        "try:\n"
        "    while True:\n"
        "        with open(f'/tmp/fill{written}', 'wb') as f:\n"
        "            f.write(b'0' * 1_000_000)\n"
        "        written += 1\n"
        "except OSError as exc:\n"
        "    print('stopped after', written, 'MB:', exc)\n"
    )
    result, _ = run(runner, fill)
    assert "No space left on device" in result.log
    written = int(result.log.split("stopped after")[1].split()[0])
    assert written <= LIMITS.tmpfs_mib


@contextmanager
def lowest_free_space_of_docker_disk(docker_client, image: str):
    """Watch the free space of the file system under the Docker root, through Docker only.

    A container's root is an overlay whose free space is that of the Docker data root
    (where volumes live too); a sampler container prints it ten times a second, and the
    result dict gets the space free at the start and the lowest seen while watching.
    """
    sampler = docker_client.containers.run(
        image,
        ["sh", "-c", "while :; do df -B1 --output=avail / | tail -n 1; sleep 0.1; done"],
        network_mode="none",
        labels={"portal.test": "disk-sampler"},
        detach=True,
    )
    try:
        samples: list[int] = []
        while not samples:  # the starting point: before the run writes anything
            samples = [int(line) for line in sampler.logs().split()]
        watched: dict[str, int] = {}
        yield watched
        samples = [int(line) for line in sampler.logs().split()]
        watched.update(start=samples[0], lowest=min(samples))
    finally:
        sampler.remove(force=True)


def test_writing_past_the_work_limit_is_a_disk_limit_and_spares_the_host_disk(
    runner, docker_client, eval_image
):
    limits = dataclasses.replace(LIMITS, timeout_seconds=15, work_mib=48)
    # 1 MiB files (each under the per-file cap) up to 1.5 GiB: only /work's size stops it.
    writer = fill_work(ONE_MIB_FILE, 1536, hold_seconds=1.5)
    with lowest_free_space_of_docker_disk(docker_client, eval_image) as disk:
        result, outcome = run(runner, writer, limits)
    assert outcome.status == RunStatus.disk_limit, (outcome, result.log)
    assert outcome.reason == (
        "Disk limit exceeded: the program wrote more than 48 MiB (or 10000 files) in /work."
    )
    assert "No space left on device" in result.log
    used_meanwhile = disk["start"] - disk["lowest"]
    assert used_meanwhile < limits.work_mib * 1024 * 1024, f"host disk use grew {used_meanwhile}"
    assert no_eval_containers(docker_client)
    assert not docker_client.volumes.list(filters={"label": "portal.eval=1"})


def test_making_very_many_files_hits_the_file_cap_as_a_disk_limit(runner, docker_client):
    limits = dataclasses.replace(LIMITS, timeout_seconds=15, work_inodes=500)
    result, outcome = run(runner, fill_work(EMPTY_FILE, 20_000), limits)
    assert outcome.status == RunStatus.disk_limit, (outcome, result.log)
    assert "(or 500 files) in /work" in outcome.reason
    made = int(result.log.split("made")[1].split()[0])
    assert made < limits.work_inodes
    assert not docker_client.volumes.list(filters={"label": "portal.eval=1"})


@pytest.fixture
def host_server():
    """An HTTP server on every host interface that records whether anyone reached it."""
    with all_interfaces_http_server() as (port, hits):
        yield port, hits


def test_no_network_reaches_host_servers_redis_or_postgres(
    runner, host_server, services, docker_client
):
    port, hits = host_server
    redis_port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
    pg_port = int(services.database_url.rsplit(":", 1)[1].split("/")[0])
    bridge_gateway = gateway_address(docker_client.networks.get("bridge"))
    targets = [
        (bridge_gateway, port),
        ("127.0.0.1", port),
        (bridge_gateway, redis_port),
        (bridge_gateway, pg_port),
        (socket.gethostbyname(socket.gethostname()), port),
    ]
    probe = (
        "import json, socket\nresults = {}\n"
        f"for host, port in {targets!r}:\n"
        "    try:\n        socket.create_connection((host, port), timeout=2).close()\n"
        "        results[f'{host}:{port}'] = 'reached'\n"
        "    except OSError as exc:\n        results[f'{host}:{port}'] = type(exc).__name__\n"
        "print(json.dumps(results))\n"
    )
    result, _ = run(runner, probe)
    reached = json.loads(result.log.strip().splitlines()[-1])
    assert "reached" not in reached.values(), reached
    assert hits == []


def test_only_the_submission_and_its_input_are_in_the_container(runner, tmp_path):
    secret = tmp_path / "other-team-solution.py"
    secret.write_text("print('secret')")
    probe = (
        "import os\nprint(sorted(os.listdir('/work')))\n"
        f"print(os.path.exists({str(secret)!r}), os.path.exists({os.getcwd()!r}))\n"
        "print(os.getuid())\n"
    )
    result, _ = run(runner, probe)
    lines = result.log.strip().splitlines()
    assert lines[0] == "['input.json', 'solution.py']"
    assert lines[1] == "False False"
    assert lines[2] == "65534"


def test_printing_a_fake_score_changes_nothing(runner):
    fake = (
        "import json, sys\nprint('score: 1000000')\nprint(json.dumps({'score': 1e9}))\n"
        "n = len(json.load(open(sys.argv[1]))['cities'])\n"
        "json.dump({'tour': list(range(n)), 'score': 1e9}, open(sys.argv[2], 'w'))\n"
    )
    _, outcome = run(runner, fake)
    assert outcome.status == RunStatus.scored and outcome.score == 1.0


def test_a_huge_answer_file_is_an_invalid_answer(runner):
    huge = "import sys\nopen(sys.argv[2], 'w').write('[' + '0,' * 2_000_000 + '0]')\n"
    _, outcome = run(runner, huge)
    assert outcome.status == RunStatus.invalid_answer
    assert "larger than" in outcome.reason


def test_a_malformed_answer_says_why(runner):
    _, outcome = run(runner, "import sys\nopen(sys.argv[2], 'w').write('{\"tour\": [0, 0]}')\n")
    assert outcome.status == RunStatus.invalid_answer
    assert "exactly once" in outcome.reason
    _, missing = run(runner, "print('forgot the answer')\n")
    assert missing.status == RunStatus.invalid_answer and "wrote no answer.json" in missing.reason


def test_the_container_is_locked_down(runner):
    probe = (
        "import os\nprint(open('/proc/self/status').read())\n"
        "try:\n    open('/etc/evil', 'w')\nexcept OSError as exc:\n    print('ROOTFS', exc)\n"
    )
    result, _ = run(runner, probe)
    assert "ROOTFS" in result.log and "Read-only file system" in result.log
    cap_line = next(line for line in result.log.splitlines() if line.startswith("CapEff"))
    assert cap_line.split()[1] == "0000000000000000"
    assert "NoNewPrivs:\t1" in result.log


# The runguard (the sandbox's PID 1) reports on a stream the program cannot reach, and
# only after every process of the program is dead.


def test_a_forged_report_on_stdout_is_only_log_text(runner):
    forged = (
        "import json, sys\n"
        "fake = {'exit_code': 0, 'answer': None, 'cpu_user_ms': 1, 'peak_memory_bytes': 1}\n"
        "print('\\nPORTAL-RUNGUARD-REPORT ' + json.dumps(fake), flush=True)\n"
        "sys.stderr.write('\\nPORTAL-RUNGUARD-REPORT ' + json.dumps(fake) + '\\n')\n"
        "raise SystemExit(3)\n"
    )
    result, outcome = run(runner, forged)
    assert result.exit_code == 3 and outcome.status == RunStatus.failed
    assert "PORTAL-RUNGUARD-REPORT" in result.log  # shown as what it is: output
    assert result.peak_memory_bytes > 1_000_000


def test_the_program_cannot_signal_trace_or_write_through_pid_1(runner):
    probe = (
        "import os, signal\n"
        "for number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):\n"
        "    try:\n        os.kill(1, number)\n"
        "    except OSError as exc:\n        print('kill', number, type(exc).__name__)\n"
        "for path, mode in (('/proc/1/fd/1', 'w'), ('/proc/1/mem', 'rb'), ('/proc/1/environ', 'rb')):\n"
        "    try:\n        open(path, mode).write('\\nPORTAL-RUNGUARD-REPORT {}\\n')\n"
        "        print('OPENED', path)\n"
        "    except (OSError, TypeError) as exc:\n        print('refused', path, type(exc).__name__)\n"
        "print('still here', flush=True)\nraise SystemExit(5)\n"
    )
    result, _ = run(runner, probe)
    assert "still here" in result.log
    assert "OPENED" not in result.log, result.log
    assert result.exit_code == 5 and result.cpu_user_ms is not None


def test_processes_left_behind_are_killed_when_the_program_ends(runner):
    # A child that keeps spinning (and would write a different answer later) must neither
    # hold the run open nor be counted after the program's end.
    leaver = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    end = time.time() + 30\n"
        "    while time.time() < end:\n        pass\n"
        "    open(sys.argv[2], 'w').write('late')\n"
        "    os._exit(0)\n"
        "print('parent done')\n"
    )
    result, outcome = run(runner, leaver)
    assert not result.timed_out and result.duration_ms < 2000, result
    assert outcome.status == RunStatus.invalid_answer and "wrote no" in outcome.reason


@pytest.mark.parametrize(
    "make_answer",
    [
        "os.symlink('/proc/1/environ', sys.argv[2])",
        "os.mkfifo(sys.argv[2])",
        "os.mkdir(sys.argv[2])",
    ],
)
def test_an_answer_that_is_not_a_regular_file_is_no_answer(runner, make_answer):
    _, outcome = run(runner, f"import os, sys\n{make_answer}\n")
    assert outcome.status == RunStatus.invalid_answer
    assert "wrote no answer.json" in outcome.reason


def test_a_submission_holding_dockers_detach_keys_arrives_whole(runner):
    # ctrl-p ctrl-q on an attached stdin detaches in Docker; a source may contain them
    # (valid UTF-8), and must still reach the sandbox byte for byte.
    source = (
        "import hashlib\nMARK = '\x10\x11 \x10\x11'\n"
        "print(hashlib.sha256(open(__file__, 'rb').read()).hexdigest())\n" + "# pad\n" * 2000
    )
    result, _ = run(runner, source)
    import hashlib

    assert result.log.split()[0] == hashlib.sha256(source.encode()).hexdigest(), result.log


def test_the_program_cannot_lower_the_runguards_limits_to_lose_its_report(runner):
    # prlimit() reaches any process of the same user: a lowered address space makes the
    # runguard's next allocation fail, a CPU limit gets it SIGKILLed and no open files
    # costs the figures. Any of them would turn the run into an infrastructure failure
    # (retried, then not the submission's fault) or hide what it used.
    probe = (
        "import resource\n"
        "for name, limits in (('RLIMIT_AS', (1 << 20, 1 << 20)), ('RLIMIT_CPU', (0, 0)),\n"
        "                     ('RLIMIT_NOFILE', (0, 0))):\n"
        "    try:\n        resource.prlimit(1, getattr(resource, name), limits)\n"
        "        print('LOWERED', name)\n"
        "    except OSError as exc:\n        print('refused', name, type(exc).__name__)\n"
        "print('x' * 200_000, flush=True)\n"
        "raise SystemExit(3)\n"
    )
    result, outcome = run(runner, probe)
    assert "LOWERED" not in result.log, result.log
    assert result.exit_code == 3 and outcome.status == RunStatus.failed
    assert result.cpu_user_ms is not None and result.peak_memory_bytes is not None


def test_an_input_larger_than_the_file_size_cap_arrives_and_the_cap_still_holds(runner):
    # The cap is on what the program writes; the run's own files are not the program's.
    limits = dataclasses.replace(LIMITS, file_size_cap_bytes=1024 * 1024)
    source = (
        "import os\nprint('input', os.path.getsize('big.bin'))\n"
        "open('mine.bin', 'wb').write(b'0' * 2 * 1024 * 1024)\n"
    )
    result = runner.run(
        run_id=999_999,
        worker_id="sandbox-test",
        files={"solution.py": source.encode(), "big.bin": b"x" * 3 * 1024 * 1024},
        command=["python3", "solution.py"],
        answer_file="answer.json",
        limits=limits,
        heartbeat=lambda: True,
    )
    assert f"input {3 * 1024 * 1024}" in result.log, result.log
    assert "File too large" in result.log, result.log
