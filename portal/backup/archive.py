"""The backup archive: a tar (gzip-compressed when the name ends in .tar.gz or .tgz)
holding the database dump, every stored object and, last, `manifest.json`.

The manifest comes last because it lists every member's sha256, known only once the
member is written; a reader therefore verifies the whole archive in one streamed pass
before it trusts any of it. Members are streamed in both directions: neither the
archive nor a large object is ever held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from portal.backup.errors import BackupError
from portal.core.storage import InvalidKey, check_key

FORMAT = "portal-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_MEMBER = "database.pgdump"
OBJECTS_PREFIX = "objects/"
CHUNK_SIZE = 1024 * 1024
# Objects up to this size are gathered in memory before they go into the tar (whose
# header needs the size first); larger ones spill to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024
GZIP_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class Member:
    size: int
    sha256: str


@dataclass
class Manifest:
    portal_version: str
    alembic_revision: str | None
    created_at: str
    counts: dict[str, Any]
    database: dict[str, Any]
    storage: dict[str, Any]
    members: dict[str, Member] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "format_version": self.format_version,
            "portal_version": self.portal_version,
            "alembic_revision": self.alembic_revision,
            "created_at": self.created_at,
            "counts": self.counts,
            "database": self.database,
            "storage": self.storage,
            "members": {
                name: {"size": member.size, "sha256": member.sha256}
                for name, member in self.members.items()
            },
        }
        return json.dumps(document, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            document = json.loads(raw)
            if document.get("format") != FORMAT:
                raise BackupError("manifest.json is not a portal backup manifest")
            if document["format_version"] > FORMAT_VERSION:
                raise BackupError(
                    f"the archive has backup format {document['format_version']}, newer than "
                    f"this portal reads ({FORMAT_VERSION}): restore it with the portal "
                    f"version that made it ({document.get('portal_version')}) or newer"
                )
            members = {
                name: Member(int(entry["size"]), str(entry["sha256"]))
                for name, entry in document["members"].items()
            }
            return cls(
                portal_version=document["portal_version"],
                alembic_revision=document["alembic_revision"],
                created_at=document["created_at"],
                counts=document["counts"],
                database=document["database"],
                storage=document["storage"],
                members=members,
                format_version=document["format_version"],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"manifest.json is unreadable ({exc!r})") from exc

    def object_keys(self) -> list[str]:
        return [name.removeprefix(OBJECTS_PREFIX) for name in self.members if is_object(name)]


def is_object(name: str) -> bool:
    return name.startswith(OBJECTS_PREFIX)


def object_member(key: str) -> str:
    try:
        return OBJECTS_PREFIX + check_key(key)
    except InvalidKey as exc:  # a bucket may hold what no restore could put back
        raise BackupError(f"cannot back up the object {key!r}: {exc}") from exc


def is_member_name(name: str) -> bool:
    """Whether `portal backup` writes a member of this name: the dump, the manifest, or
    objects/ and a storage key (never an absolute path, '..', or an empty key)."""
    if name in (DATABASE_MEMBER, MANIFEST):
        return True
    try:
        return is_object(name) and bool(check_key(name.removeprefix(OBJECTS_PREFIX)))
    except InvalidKey:
        return False


class HashingReader(io.RawIOBase):
    """Reads through to `source`, hashing and counting the bytes as they pass."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def member(self) -> Member:
        return Member(self.size, self.digest.hexdigest())


def drain(reader: HashingReader) -> Member:
    while reader.read(CHUNK_SIZE):
        pass
    return reader.member()


class ArchiveWriter:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, Member] = {}

    def _add(self, name: str, source: IO[bytes], size: int) -> Member:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(time.time())
        info.mode = 0o600
        reader = HashingReader(source)
        self.tar.addfile(info, reader)
        member = reader.member()
        if member.size != size:  # the source changed under us
            raise BackupError(f"{name} changed size while it was archived; run the backup again")
        self.members[name] = member
        return member

    def add_file(self, name: str, path: Path) -> Member:
        with path.open("rb") as source:
            return self._add(name, source, path.stat().st_size)

    def add_chunks(self, name: str, chunks: Iterable[bytes]) -> Member:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            for chunk in chunks:
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            return self._add(name, spool, size)

    def add_manifest(self, manifest: Manifest) -> None:
        raw = manifest.to_json()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(raw)
        info.mtime = int(time.time())
        info.mode = 0o600
        self.tar.addfile(info, io.BytesIO(raw))


@contextmanager
def writing(output: Path) -> Iterator[ArchiveWriter]:
    """An archive written to a temporary name beside `output` and renamed into place
    only when complete, so a failed backup never leaves something that looks whole."""
    mode = "w|gz" if output.name.endswith(GZIP_SUFFIXES) else "w|"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as raw:
            with tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
                yield ArchiveWriter(tar)
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)


# What a damaged tar or gzip stream raises while being read.
DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _damaged(path: Path, exc: Exception) -> BackupError:
    return BackupError(
        f"{path} is truncated or corrupted ({exc}); nothing was restored. "
        "Use another copy of the backup"
    )


@contextmanager
def reading(path: Path) -> Iterator[tarfile.TarFile]:
    if not path.is_file():
        raise BackupError(f"no backup archive at {path}")
    try:
        with tarfile.open(path, "r|*") as tar:
            yield tar
    except DAMAGED as exc:
        raise _damaged(path, exc) from exc


def verify(path: Path) -> Manifest:
    """Read the whole archive once and check every member against the manifest: the
    manifest must be there, list exactly the members present, with their sizes and
    checksums. Nothing is restored from an archive that fails any of it."""
    found: dict[str, Member] = {}
    raw_manifest = None
    with reading(path) as tar:
        for info in tar:
            refusal = _refusal(info, seen=found.keys() | ({MANIFEST} if raw_manifest else set()))
            if refusal:
                raise BackupError(
                    f"{path} {refusal}, which `portal backup` never writes; nothing was "
                    "restored. Use an archive made by `portal backup`"
                )
            source = tar.extractfile(info)
            assert source is not None  # a regular file, checked above
            if info.name == MANIFEST:
                raw_manifest = source.read()
            else:
                found[info.name] = drain(HashingReader(source))
    if raw_manifest is None:
        raise BackupError(
            f"{path} has no manifest.json: it is truncated or not a portal backup; "
            "nothing was restored"
        )
    manifest = Manifest.from_json(raw_manifest)
    problems = []
    for name, expected in manifest.members.items():
        actual = found.get(name)
        if actual is None:
            problems.append(f"{name} is missing")
        elif actual.size != expected.size:
            problems.append(f"{name} has {actual.size} bytes, the manifest says {expected.size}")
        elif actual.sha256 != expected.sha256:
            problems.append(f"{name}'s sha256 differs from the manifest's")
    problems += [f"{name} is not in the manifest" for name in found if name not in manifest.members]
    if DATABASE_MEMBER not in manifest.members:
        problems.append(f"the manifest lists no {DATABASE_MEMBER}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise BackupError(
            f"{path} is corrupted: {shown}. Nothing was restored; use another copy of the backup"
        )
    return manifest


def _refusal(info: tarfile.TarInfo, seen: set[str]) -> str | None:
    """Why the member `info` cannot be in a portal backup, if it cannot: its name could
    reach outside the storage (restore writes each object under its name), it is a link
    or a device, or a second member of a name (whose content the manifest cannot vouch
    for: it lists one checksum per name)."""
    if not info.isfile():
        return f"holds {info.name!r}, a link, directory or device rather than a file"
    if not is_member_name(info.name):
        return f"holds a member named {info.name!r}"
    if info.name in seen:
        return f"holds {info.name!r} twice"
    return None


def checked_members(path: Path, manifest: Manifest) -> Iterator[tuple[str, HashingReader, Member]]:
    """The archive's members in order (the manifest aside), each as a reader that hashes
    what it passes on; `confirm` after consuming one checks it against the manifest, in
    case the file changed since `verify` read it."""
    with reading(path) as tar:
        for info in tar:
            if info.name == MANIFEST:
                continue
            source = tar.extractfile(info)
            assert source is not None  # verify() refused anything but files
            yield info.name, HashingReader(source), manifest.members[info.name]


def confirm(name: str, reader: HashingReader, expected: Member) -> None:
    drain(reader)
    if reader.member() != expected:
        raise BackupError(f"{name} changed since the archive was verified; restore it again")


def stream(reader: BinaryIO) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK_SIZE):
        yield chunk
