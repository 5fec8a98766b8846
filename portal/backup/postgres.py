"""PostgreSQL's part of a backup: the client tools that match a server, one snapshot
for the dump and its row counts, and pg_restore into an empty schema.

pg_dump and pg_restore are used in the server's own major version: an older pg_dump
refuses a newer server, and a newer one may write what the server cannot read back.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from portal.backup.errors import BackupError
from portal.core.db import psycopg_conninfo
from portal.core.embedded import postgres_bin_path

VERSION_PATTERN = re.compile(r"\(PostgreSQL\) (\d+)")
# The schema the portal's migrations create everything in.
SCHEMA = "public"


@dataclass(frozen=True)
class Connection:
    """How the client tools reach a database: a libpq URL without the password, which
    travels in the environment instead of on a command line anyone can list."""

    conninfo: str
    password: str | None

    @classmethod
    def from_url(cls, database_url: str) -> Connection:
        url = make_url(database_url)
        without_password = URL.create(
            url.drivername, url.username, None, url.host, url.port, url.database, url.query
        )
        return cls(
            psycopg_conninfo(without_password.render_as_string(hide_password=False)),
            url.password,
        )

    def connect(self, **options: Any) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, password=self.password, **options)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def _one(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row, one-column query (such queries always give a row)."""
    assert row is not None
    return row[0]


def server_major(conn: psycopg.Connection) -> int:
    return int(_one(conn.execute("SHOW server_version_num").fetchone())) // 10000


def _tool_major(path: Path) -> int | None:
    try:
        output = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = VERSION_PATTERN.search(output)
    return int(found.group(1)) if found else None


def _candidate_bin_dirs() -> list[Path]:
    dirs = [postgres_bin_path()]  # the embedded server's own tools (pgserver ships them)
    dirs += [Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    # Debian and Ubuntu install each major version side by side; so do the PGDG RPMs.
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    dirs += sorted(Path("/usr").glob("pgsql-*/bin"), reverse=True)
    return dirs


def find_client_tool(name: str, major: int) -> Path:
    """The `name` (pg_dump, pg_restore) of PostgreSQL `major`, or a message naming it."""
    looked: list[str] = []
    for directory in _candidate_bin_dirs():
        candidate = directory / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        found = _tool_major(candidate)
        if found == major:
            return candidate
        looked.append(f"{candidate} ({found or 'unknown version'})")
    seen = "; found only " + ", ".join(looked) if looked else ""
    raise BackupError(
        f"the database server runs PostgreSQL {major} and needs {name} {major}{seen}. "
        f"Install the PostgreSQL {major} client tools (Debian/Ubuntu: "
        f"postgresql-client-{major}) or put their bin directory first on PATH"
    )


@dataclass(frozen=True)
class Snapshot:
    """What the dump holds, read in the very transaction whose snapshot it dumps."""

    server_major: int
    revision: str | None
    row_counts: dict[str, int]


def _revision(conn: psycopg.Connection) -> str | None:
    if "alembic_version" not in table_names(conn):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def table_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (SCHEMA,)
    )
    return [name for (name,) in rows]


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for table in table_names(conn):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))
        counts[table] = int(_one(conn.execute(query).fetchone()))
    return counts


def dump(connection: Connection, target: Path) -> Snapshot:
    """pg_dump (custom format) into `target`, from one exported snapshot, so the dump,
    the row counts and the revision recorded beside it all describe the same moment."""
    with connection.connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        major = server_major(conn)
        pg_dump = find_client_tool("pg_dump", major)
        # The exported snapshot lives as long as this transaction stays open.
        snapshot_id = str(_one(conn.execute("SELECT pg_export_snapshot()").fetchone()))
        snapshot = Snapshot(major, _revision(conn), row_counts(conn))
        _run(
            [
                str(pg_dump),
                "--format=custom",
                f"--snapshot={snapshot_id}",
                f"--file={target}",
                f"--dbname={connection.conninfo}",
            ],
            connection,
            "pg_dump",
        )
        conn.rollback()
    return snapshot


def _run(command: list[str], connection: Connection, what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=connection.environment())
    if result.returncode != 0:
        detail = result.stderr.strip()[-2000:] or f"exit code {result.returncode}"
        raise BackupError(f"{what} failed: {detail}")


def schema_contents(connection: Connection) -> list[str]:
    """What the portal's schema already holds: tables, views, sequences, types and
    functions (a restore only goes into an empty one)."""
    with connection.connect() as conn:
        relations = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace "
            "AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') ORDER BY relname",
            (SCHEMA,),
        ).fetchall()
        routines = conn.execute(
            "SELECT proname || '()' FROM pg_proc WHERE pronamespace = %s::regnamespace ORDER BY 1",
            (SCHEMA,),
        ).fetchall()
        types = conn.execute(
            "SELECT typname FROM pg_type WHERE typnamespace = %s::regnamespace "
            "AND typtype IN ('e', 'd', 'r', 'm') ORDER BY typname",
            (SCHEMA,),
        ).fetchall()
    return [name for (name,) in [*relations, *routines, *types]]


def empty_schema(connection: Connection) -> None:
    """Drop everything in the portal's schema (restore --force)."""
    with connection.connect(autocommit=True) as conn, conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))


def restore(connection: Connection, dump_file: Path) -> None:
    """pg_restore the dump in one transaction: it lands whole or not at all.

    Owners and grants are left out, so the archive restores into a database owned by
    another role; the audit log's append-only rule is a trigger, which is restored.
    """
    with connection.connect() as conn:
        major = server_major(conn)
    pg_restore = find_client_tool("pg_restore", major)
    _run(
        [
            str(pg_restore),
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            "--no-privileges",
            f"--dbname={connection.conninfo}",
            str(dump_file),
        ],
        connection,
        "pg_restore",
    )


def database_state(connection: Connection) -> tuple[str | None, dict[str, int]]:
    """The revision and row counts of a database (to check a restore against its archive)."""
    with connection.connect() as conn:
        return _revision(conn), row_counts(conn)
