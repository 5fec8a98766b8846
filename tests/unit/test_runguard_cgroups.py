"""The runguard reads cgroup v2 and v1 layouts (this machine has v1; production hosts
mostly have v2), from files laid out as the kernel lays them out."""

import os

import pytest

from worker.sandbox import runguard


def write(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def cgroup_root(tmp_path, monkeypatch):
    monkeypatch.setattr(runguard, "CGROUP_ROOT", str(tmp_path))
    return tmp_path


def test_cgroup_v2_cpu_peak_and_oom_kills(cgroup_root):
    write(
        cgroup_root,
        {
            "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
            "memory.peak": "209715200\n",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        },
    )
    assert runguard.cgroup_cpu_ns() == (2_000_000_000, 500_000_000)
    assert runguard.cgroup_memory() == (209_715_200, 1)


def test_cgroup_v2_before_memory_peak_existed_says_not_measured(cgroup_root):
    write(cgroup_root, {"memory.events": "oom_kill 0\n"})
    assert runguard.cgroup_memory() == (None, 0)


def test_cgroup_v1_nanosecond_counters(cgroup_root):
    write(
        cgroup_root,
        {
            "cpuacct/cpuacct.usage_user": "1200000000\n",
            "cpuacct/cpuacct.usage_sys": "30000000\n",
            "memory/memory.max_usage_in_bytes": "104857600\n",
            "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
    )
    assert runguard.cgroup_cpu_ns() == (1_200_000_000, 30_000_000)
    assert runguard.cgroup_memory() == (104_857_600, 2)


def test_cgroup_v1_cpu_adds_up_to_the_exact_total_split_as_sampled(cgroup_root):
    # usage_user and usage_sys are tick samples (here 4 % short of the exact usage).
    write(
        cgroup_root,
        {
            "cpuacct/cpuacct.usage": "1000000000\n",
            "cpuacct/cpuacct.usage_user": "720000000\n",
            "cpuacct/cpuacct.usage_sys": "240000000\n",
        },
    )
    assert runguard.cgroup_cpu_ns() == (750_000_000, 250_000_000)


def test_cgroup_v1_old_kernels_count_cpu_in_ticks(cgroup_root):
    write(
        cgroup_root,
        {
            "cpuacct/cpuacct.stat": "user 150\nsystem 7\n",
            "memory/memory.max_usage_in_bytes": "1048576\n",
            "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",
        },
    )
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert runguard.cgroup_cpu_ns() == (150 * tick_ns, 7 * tick_ns)
    assert runguard.cgroup_memory() == (1_048_576, 0)


def test_no_cgroup_files_means_not_measured(cgroup_root):
    assert runguard.cgroup_cpu_ns() is None
    assert runguard.cgroup_memory() == (None, 0)
