"""Object storage: one interface, a local directory (embedded default) and MinIO/S3.

Objects are content-addressed (the key is derived from the sha256), so writing the same
content twice is harmless and a half-written object is never visible under its key.
Methods are synchronous; async code calls them through a thread pool.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from portal.core.config import Settings

T = TypeVar("T")

CHUNK_SIZE = 64 * 1024


class StorageUnavailable(Exception):
    """The object store cannot be reached or refused the operation."""


class ObjectNotFound(KeyError):
    def __str__(self) -> str:  # KeyError's own would be the key's repr
        return f"no object {self.args[0]} in storage" if self.args else "no such object"


class InvalidKey(ValueError):
    """A key that is not a plain relative path, so it could name a place outside the store."""


def check_key(key: str) -> str:
    """`key`, if it is a plain relative path such as 'submissions/ab/abcd...': names joined
    by '/', none of them empty, '.' or '..', and no NUL. Every backend takes its keys
    through here, and so does a restore for the names in an archive: a key can never
    reach outside a local store, and a key means the same on disk as in a bucket."""
    if "\x00" in key or any(name in ("", ".", "..") for name in key.split("/")):
        raise InvalidKey(
            f"{key!r} is not a storage key: a key is a relative path of names joined by '/', "
            "none of them empty, '.' or '..'"
        )
    return key


def content_key(sha256: str, kind: str = "submissions") -> str:
    return f"{kind}/{sha256[:2]}/{sha256}"


class Storage(Protocol):
    def put(self, key: str, data: BinaryIO, length: int, content_type: str = ...) -> None: ...
    def get(self, key: str) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self) -> Iterator[str]: ...
    def ping(self) -> None: ...
    def ensure_ready(self) -> None: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):  # a symlink inside the store
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    def ensure_ready(self) -> None:
        self.ping()

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".ping"
            probe.write_bytes(b"ok")
        except OSError as exc:
            raise StorageUnavailable(
                f"local storage at {self.root} is not writable: {exc}"
            ) from exc

    def put(
        self, key: str, data: BinaryIO, length: int, content_type: str = "application/octet-stream"
    ) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temp file and rename, so readers never see a partial object.
            handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            with os.fdopen(handle, "wb") as out:
                while chunk := data.read(CHUNK_SIZE):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, path)
        except OSError as exc:
            with contextlib.suppress(Exception):
                os.unlink(temp_name)
            raise StorageUnavailable(f"could not write {key}: {exc}") from exc

    def get(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as source:
                while chunk := source.read(CHUNK_SIZE):
                    yield chunk

        return chunks()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list_keys(self) -> Iterator[str]:
        """Every stored key, sorted; the ping probe and unfinished writes are not objects."""
        if not self.root.is_dir():
            return iter(())
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
        return iter(sorted(keys))


class MinioStorage:
    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool
    ) -> None:
        from minio import Minio

        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self.bucket = bucket
        self._bucket_ready = False

    def ensure_ready(self) -> None:
        """Create the bucket if it is missing (called at start and before first use)."""
        self._call(lambda: None)

    def _call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from minio.error import S3Error

        try:
            if not self._bucket_ready:
                if not self.client.bucket_exists(self.bucket):
                    self.client.make_bucket(self.bucket)
                self._bucket_ready = True
            return operation(*args, **kwargs)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectNotFound(args[1] if len(args) > 1 else "") from exc
            name = getattr(operation, "__name__", "operation")
            raise StorageUnavailable(f"object storage refused {name}: {exc}") from exc
        except Exception as exc:
            raise StorageUnavailable(f"object storage unreachable: {exc}") from exc

    def ping(self) -> None:
        self._call(self.client.bucket_exists, self.bucket)

    def put(
        self, key: str, data: BinaryIO, length: int, content_type: str = "application/octet-stream"
    ) -> None:
        check_key(key)
        self._call(self.client.put_object, self.bucket, key, data, length, content_type)

    def get(self, key: str) -> Iterator[bytes]:
        response = self._call(self.client.get_object, self.bucket, key)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(CHUNK_SIZE)
            except Exception as exc:  # urllib3's errors: the connection broke midway
                raise StorageUnavailable(f"object storage broke off reading {key}: {exc}") from exc
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call(self.client.remove_object, self.bucket, key)

    def list_keys(self) -> Iterator[str]:
        """Every stored key, in the store's (lexical) order, fetched page by page."""
        listing = self._call(self.client.list_objects, self.bucket, recursive=True)

        def keys() -> Iterator[str]:
            try:
                for entry in listing:
                    if not entry.is_dir:
                        yield entry.object_name
            except Exception as exc:  # the listing pages are fetched lazily
                raise StorageUnavailable(f"object storage broke off listing keys: {exc}") from exc

        return keys()


def create_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "minio":
        return MinioStorage(
            settings.minio_endpoint,
            settings.minio_access_key,
            settings.minio_secret_key,
            settings.minio_bucket,
            settings.minio_secure,
        )
    return LocalStorage(settings.local_storage_path)
