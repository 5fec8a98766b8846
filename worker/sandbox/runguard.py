"""The sandbox's own PID 1: runs the submission and reports what it did and cost.

Standard library only (and few modules of it: every import is start-up time of every
run), and self-contained: the Docker runner passes this file's text to
the image's `python3 -I -S -c`, so any image with Python works and nothing of ours has to
be baked into it. Like DOMjudge's runguard, it measures from the cgroup, which the
program cannot touch, and reports only after every process of the program is dead.

It starts as the container's root with only CAP_SETUID, CAP_SETGID and CAP_KILL, and
the program runs as another user (the sandbox user, without capabilities): a process may
signal, trace, renice or prlimit() another of its own user, so were they one user, the
program could lower this process's limits (its address space, its CPU time) and have it
die before it reports.

1. Reads the run's files (JSON of base64) from stdin and writes them into /work (a size-
   and inode-capped tmpfs) as the sandbox user, whose files they are.
2. Makes itself undumpable (no /proc/1/mem or /proc/1/fd for anyone without
   CAP_SYS_PTRACE) and starts the command as the sandbox user, under the per-file size
   cap, with stdout and stderr on one pipe, keeping a capped head and tail of what comes
   through and counting every byte.
3. When the command exits or its time is up, kills every other process in the
   container (orphans are reparented to PID 1 and reaped), becomes the sandbox user for
   good, then reads the cgroup's CPU time (minus its own start-up) and peak memory,
   whether the memory cap killed anything, whether /work is full, and the answer file.
4. Writes one line to its stdout, which only it holds: MARKER + JSON. Nothing the program
   writes reaches that stream.

Invoked as: python3 -I -S -c SOURCE CONFIG_JSON, where CONFIG_JSON has command, uid, gid,
timeout_seconds, log_cap_bytes, answer_file, answer_cap_bytes, file_size_cap_bytes and
full_below_bytes.
"""

import base64
import json
import os
import resource
import select
import signal
import stat
import sys
import time

MARKER = "PORTAL-RUNGUARD-REPORT "
WORKDIR = "/work"
CGROUP_ROOT = "/sys/fs/cgroup"
PR_SET_DUMPABLE = 4


def make_undumpable() -> None:
    """A second lock beside the other user: an undumpable process may be traced, and
    its /proc/1/fd, /proc/1/mem and the like opened, only with CAP_SYS_PTRACE, which
    no process in the sandbox has."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def read_files_from_stdin() -> dict[str, bytes]:
    """{"name": "<base64>"} on stdin: text, because Docker's attach watches stdin for its
    detach keys (ctrl-p ctrl-q), bytes raw files could hold and base64 never does."""
    files = {}
    for name, data in json.loads(sys.stdin.buffer.read()).items():
        if not name or os.path.basename(name) != name:
            raise ValueError(f"unexpected file name {name!r}")
        files[name] = base64.b64decode(data, validate=True)
    return files


def write_files(files: dict[str, bytes], uid: int, gid: int) -> None:
    """Into /work, which only the sandbox user may enter, as that user: they are the
    program's files like any it writes (before it starts, so it cannot interfere)."""
    os.setegid(gid)
    os.seteuid(uid)
    try:
        for name, data in files.items():
            descriptor = os.open(
                os.path.join(WORKDIR, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
            )
            with os.fdopen(descriptor, "wb") as target:
                target.write(data)
    finally:
        os.seteuid(0)
        os.setegid(0)


def become(uid: int, gid: int) -> None:
    """Be the sandbox user for good: all three ids, so no capability survives."""
    os.setgroups([gid])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _fields(text: str | None) -> dict[str, int]:
    """'key value' lines (cpu.stat, memory.stat, memory.events) as a dict of ints."""
    found = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def cgroup_cpu_ns() -> tuple[int, int] | None:
    """(user, system) nanoseconds the whole container used so far, v2 or v1."""
    v2 = _fields(_read(f"{CGROUP_ROOT}/cpu.stat"))
    if "user_usec" in v2:
        return v2["user_usec"] * 1000, v2["system_usec"] * 1000
    user = _int(_read(f"{CGROUP_ROOT}/cpuacct/cpuacct.usage_user"))
    system = _int(_read(f"{CGROUP_ROOT}/cpuacct/cpuacct.usage_sys"))
    if user is not None and system is not None:
        # Both are sampled at the scheduler tick (a throttled spinner's can fall a few
        # per cent short); cpuacct.usage is the exact total: split that as they split.
        total = _int(_read(f"{CGROUP_ROOT}/cpuacct/cpuacct.usage"))
        if total is not None and user + system > 0:
            user = total * user // (user + system)
            system = total - user
        return user, system
    ticks = _fields(_read(f"{CGROUP_ROOT}/cpuacct/cpuacct.stat"))  # USER_HZ ticks
    if "user" in ticks:
        per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return ticks["user"] * per_tick, ticks["system"] * per_tick
    return None


def cgroup_memory() -> tuple[int | None, int]:
    """(peak bytes or None, OOM kills) of the container's memory cgroup, v2 or v1."""
    events = _read(f"{CGROUP_ROOT}/memory.events")
    if events is not None:
        return _int(_read(f"{CGROUP_ROOT}/memory.peak")), _fields(events).get("oom_kill", 0)
    peak = _int(_read(f"{CGROUP_ROOT}/memory/memory.max_usage_in_bytes"))
    control = _fields(_read(f"{CGROUP_ROOT}/memory/memory.oom_control"))
    oom_kills = control.get("oom_kill")
    if oom_kills is None:  # kernels before 4.13: any failure to charge counts
        oom_kills = 1 if control.get("under_oom") else 0
    return peak, oom_kills


class Output:
    """A capped head and tail of the program's output, and how much there was."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 4
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    def kept(self) -> tuple[bytes, bytes, int]:
        tail = bytes(self.tail[-self.tail_cap :]) if self.tail_cap else b""
        omitted = self.total - len(self.head) - len(tail)
        return bytes(self.head), tail, omitted


def start(config: dict, write_end: int) -> int:
    command = config["command"]
    pid = os.fork()
    if pid == 0:  # the child: becomes the program
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.closerange(3, 65536)
            become(config["uid"], config["gid"])
            os.chdir(WORKDIR)
            # Here, not on the container: the runguard writes the run's own files.
            cap = config["file_size_cap_bytes"]
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
            # A fresh program starts with default signal handling: ignored signals
            # (Python ignores SIGPIPE and SIGXFSZ) would otherwise survive exec.
            for number in range(1, signal.NSIG):
                try:  # noqa: SIM105  # contextlib would cost this start-up an import
                    signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            os.execvp(command[0], command)  # noqa: S606  # the kit's command, by design
        except BaseException as exc:
            os.write(2, f"could not start {command[0]}: {exc}\n".encode())
        os._exit(127)
    return pid


def kill_everything_else() -> None:
    """SIGKILL to every process in the container but PID 1, then reap them all."""
    try:  # noqa: SIM105  # contextlib would cost this start-up an import
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def drain(read_end: int, output: Output, until: float) -> None:
    """Read what the program wrote until the deadline or the end of its output."""
    while True:
        remaining = None if until is None else max(0.0, until - time.monotonic())
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            return
        try:
            chunk = os.read(read_end, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            return
        output.add(chunk)


def supervise(config: dict) -> dict:
    output = Output(config["log_cap_bytes"])
    read_end, write_end = os.pipe()
    cpu_before = cgroup_cpu_ns()
    started = time.monotonic()
    deadline = started + config["timeout_seconds"]
    pid = start(config, write_end)
    os.close(write_end)
    os.set_blocking(read_end, False)
    # A pidfd wakes select() the moment the program exits; without one (kernels before
    # 5.3), poll for the exit every 50 ms.
    waiter = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    status = 0  # set by the wait below
    timed_out = False
    reading = True
    while True:
        finished, raw_status = os.waitpid(pid, os.WNOHANG)
        if finished:
            status = raw_status
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        watched = ([read_end] if reading else []) + ([waiter] if waiter is not None else [])
        step = remaining if waiter is not None else min(remaining, 0.05)
        ready, _, _ = select.select(watched, [], [], step)
        if reading and read_end in ready:
            try:
                chunk = os.read(read_end, 1 << 16)
            except BlockingIOError:
                continue
            if chunk:
                output.add(chunk)
            else:
                reading = False  # every writer closed it; the program may still run
    wall = time.monotonic() - started
    if timed_out:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    kill_everything_else()
    # Nothing of the program is left: what follows needs no capability, and /work is
    # the sandbox user's.
    become(config["uid"], config["gid"])
    drain(read_end, output, until=time.monotonic() + 1.0)
    cpu_after = cgroup_cpu_ns()
    peak, oom_kills = cgroup_memory()
    report: dict = {
        "wall_ms": int(wall * 1000),
        "timed_out": timed_out,
        "oom_kills": oom_kills,
        "peak_memory_bytes": peak,
    }
    if os.WIFSIGNALED(status):
        report["exit_signal"] = os.WTERMSIG(status)
        report["exit_code"] = 128 + os.WTERMSIG(status)
    else:
        report["exit_signal"] = None
        report["exit_code"] = os.WEXITSTATUS(status)
    if cpu_before is not None and cpu_after is not None:
        report["cpu_user_ms"] = max(0, cpu_after[0] - cpu_before[0]) // 1_000_000
        report["cpu_system_ms"] = max(0, cpu_after[1] - cpu_before[1]) // 1_000_000
    head, tail, omitted = output.kept()
    report.update(
        output_bytes=output.total,
        log_head=base64.b64encode(head).decode(),
        log_tail=base64.b64encode(tail).decode(),
        log_omitted=omitted,
    )
    space = os.statvfs(WORKDIR)
    report["work_full"] = (
        space.f_bavail * space.f_frsize < config["full_below_bytes"] or space.f_favail == 0
    )
    report.update(read_answer(config["answer_file"], config["answer_cap_bytes"]))
    return report


def read_answer(name: str, cap: int) -> dict:
    """The answer file if it is a regular file within the cap (never a link, a FIFO or a
    device: the program chose what sits at that name)."""
    try:
        descriptor = os.open(
            os.path.join(WORKDIR, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        )
    except OSError:
        return {"answer": None, "answer_too_large": False}
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        return {"answer": None, "answer_too_large": False}
    if info.st_size > cap:
        os.close(descriptor)
        return {"answer": None, "answer_too_large": True}
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        return {"answer": None, "answer_too_large": True}
    return {"answer": base64.b64encode(data).decode(), "answer_too_large": False}


def main() -> None:
    # PID 1 gets only the signals it handles from inside its namespace: default every
    # one Python changed, so nothing the program sends can reach this process.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    make_undumpable()
    config = json.loads(sys.argv[1])
    write_files(read_files_from_stdin(), config["uid"], config["gid"])
    report = supervise(config)
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
