"""Run a program and report what it cost: the process runner's small go-between.

Run by path with the interpreter's -I -S flags (never imported): it imports nothing but
the standard library, so it stays a few MiB. It exists because a process's peak memory
(ru_maxrss) keeps the high-water mark of the image it was forked from: a program forked
straight from the worker would report the worker's own memory as its peak. Forked from
this small process instead, the program's peak is its own.

Usage: measured.py REPORT_FD PROGRAM [ARGS...]

Writes to REPORT_FD one line `pid <pid>` as soon as the program started (its process
group, for the runner to kill on a timeout), then, once it ended, one JSON line with its
wait status and rusage. Exits 0 once the report is written.
"""

import json
import os
import sys


def main() -> None:
    report = int(sys.argv[1])
    program = sys.argv[2:]
    os.set_inheritable(report, False)  # the program never holds the runner's pipe
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # its own group: the runner kills it (and what it spawned), not us
            os.execvp(program[0], program)  # noqa: S606  # the kit's argv, no shell
        except OSError as exc:
            os.write(2, f"cannot start {program[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    os.write(report, f"pid {pid}\n".encode())
    _, status, usage = os.wait4(pid, 0)
    figures = {
        "status": status,
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "maxrss": usage.ru_maxrss,
    }
    os.write(report, (json.dumps(figures) + "\n").encode())


if __name__ == "__main__":
    main()
