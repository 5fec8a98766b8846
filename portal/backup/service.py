"""`portal backup` and `portal restore`: the database and the object store, together.

Backup order matters for consistency: the database is dumped first (one snapshot), then
the objects are listed. Objects are content-addressed and written before the row that
names them commits, so every object the dump refers to is already in the store when it
is listed; an upload landing meanwhile at worst adds an object no row names yet.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import BinaryIO, cast

from portal.backup import archive, postgres
from portal.backup.archive import DATABASE_MEMBER, Manifest
from portal.backup.errors import BackupError
from portal.core.storage import Storage
from portal.core.time import utcnow


def portal_version() -> str:
    try:
        return version("competition-portal")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def backup(database_url: str, storage: Storage, storage_backend: str, output: Path) -> Manifest:
    """Write one archive of the database and every stored object to `output`."""
    connection = postgres.Connection.from_url(database_url)
    storage.ensure_ready()
    with tempfile.TemporaryDirectory(prefix="portal-backup-") as scratch:
        dump_file = Path(scratch) / DATABASE_MEMBER
        snapshot = postgres.dump(connection, dump_file)
        with archive.writing(output) as writer:
            writer.add_file(DATABASE_MEMBER, dump_file)
            dump_file.unlink()  # it is in the archive now; free the space
            for key in storage.list_keys():
                writer.add_chunks(archive.object_member(key), storage.get(key))
            manifest = Manifest(
                portal_version=portal_version(),
                alembic_revision=snapshot.revision,
                created_at=utcnow().isoformat(),
                counts={
                    "tables": snapshot.row_counts,
                    "objects": sum(1 for name in writer.members if archive.is_object(name)),
                },
                database={"server_major": snapshot.server_major, "dump_format": "custom"},
                storage={"backend": storage_backend},
                members=dict(writer.members),
            )
            writer.add_manifest(manifest)
    return manifest


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    head_revision: str | None

    @property
    def needs_migrate(self) -> bool:
        return self.manifest.alembic_revision != self.head_revision


def occupied(connection: postgres.Connection, storage: Storage) -> list[str]:
    """What in the target is not empty, described for the person restoring."""
    found = []
    contents = postgres.schema_contents(connection)
    if contents:
        shown = ", ".join(contents[:5]) + (", ..." if len(contents) > 5 else "")
        found.append(
            f"the database's {postgres.SCHEMA!r} schema is not empty ({len(contents)} tables, "
            f"sequences, types or functions: {shown})"
        )
    keys = list(_first_keys(storage, 3))
    if keys:
        found.append(f"the object storage already holds objects (such as {', '.join(keys)})")
    return found


def _first_keys(storage: Storage, count: int) -> Iterator[str]:
    for number, key in enumerate(storage.list_keys()):
        if number == count:
            return
        yield key


def verify(path: Path) -> Manifest:
    """Check the whole archive against its manifest before anything is touched."""
    return archive.verify(path)


def restore(
    path: Path, manifest: Manifest, database_url: str, storage: Storage, *, force: bool
) -> RestoreResult:
    """Restore the archive at `path`, whose `manifest` `verify` returned, into an empty
    database and storage (or, with `force`, in place of what they hold)."""
    connection = postgres.Connection.from_url(database_url)
    storage.ensure_ready()
    found = occupied(connection, storage)
    if found and not force:
        raise BackupError(
            "refusing to restore over existing data: "
            + "; ".join(found)
            + ". Restore into an empty database and storage, or pass --force to replace "
            "everything they hold with the archive"
        )
    if found:
        postgres.empty_schema(connection)
        for key in list(storage.list_keys()):
            storage.delete(key)

    with tempfile.TemporaryDirectory(prefix="portal-restore-") as scratch:
        for name, reader, expected in archive.checked_members(path, manifest):
            if name == DATABASE_MEMBER:
                dump_file = Path(scratch) / DATABASE_MEMBER
                with dump_file.open("wb") as out:
                    shutil.copyfileobj(reader, out, archive.CHUNK_SIZE)
                archive.confirm(name, reader, expected)
                postgres.restore(connection, dump_file)
                dump_file.unlink()
            else:
                key = name.removeprefix(archive.OBJECTS_PREFIX)
                storage.put(key, cast(BinaryIO, reader), expected.size)
                archive.confirm(name, reader, expected)

    _check_restored(connection, storage, manifest)
    return RestoreResult(manifest, _head_revision())


def _check_restored(connection: postgres.Connection, storage: Storage, manifest: Manifest) -> None:
    revision, counts = postgres.database_state(connection)
    problems = []
    if revision != manifest.alembic_revision:
        problems.append(f"revision {revision}, the archive's is {manifest.alembic_revision}")
    expected_counts = manifest.counts["tables"]
    for table in sorted(set(counts) | set(expected_counts)):
        if counts.get(table) != expected_counts.get(table):
            problems.append(
                f"{table} has {counts.get(table)} rows, the archive {expected_counts.get(table)}"
            )
    missing = [key for key in manifest.object_keys() if not storage.exists(key)]
    if missing:
        problems.append(f"{len(missing)} objects missing from storage (such as {missing[0]})")
    if problems:
        raise BackupError("the restored data does not match the archive: " + "; ".join(problems))


def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from portal.core.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config("")).get_current_head()
