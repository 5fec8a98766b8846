"""One contract, two implementations: a local directory and MinIO (any S3 endpoint).

No MinIO server can be installed here, so the MinIO client talks to moto's S3-compatible
server (the `s3_endpoint` fixture in tests/conftest.py).
"""

import hashlib
import io

import pytest

from portal.core.embedded import free_loopback_port
from portal.core.storage import (
    LocalStorage,
    MinioStorage,
    ObjectNotFound,
    StorageUnavailable,
    content_key,
)
from tests.fixtures.servers import fresh_bucket


@pytest.fixture(params=["local", "minio"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    store = fresh_bucket(request.getfixturevalue("s3_endpoint"))
    assert store.client.bucket_exists(store.bucket)
    return store


def put_bytes(storage, data: bytes) -> str:
    key = content_key(hashlib.sha256(data).hexdigest())
    storage.put(key, io.BytesIO(data), len(data), "text/x-python")
    return key


def test_put_then_get_streams_the_same_bytes(storage):
    data = b"print('hi')\n" * 20000  # 240 KB: several chunks
    key = put_bytes(storage, data)
    assert storage.exists(key)
    assert b"".join(storage.get(key)) == data


def test_missing_objects_are_reported_as_missing(storage):
    key = content_key("0" * 64)
    assert not storage.exists(key)
    with pytest.raises(ObjectNotFound):
        b"".join(storage.get(key))


def test_delete_removes_and_is_idempotent(storage):
    key = put_bytes(storage, b"x = 1\n")
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)


def test_writing_the_same_content_twice_is_harmless(storage):
    first = put_bytes(storage, b"y = 2\n")
    second = put_bytes(storage, b"y = 2\n")
    assert first == second and b"".join(storage.get(first)) == b"y = 2\n"


def test_ping_succeeds_when_reachable(storage):
    storage.ping()


def test_list_keys_names_every_stored_object_and_nothing_else(storage):
    assert list(storage.list_keys()) == []
    storage.ping()  # the local store's probe file is not an object
    keys = [put_bytes(storage, f"value = {n}\n".encode()) for n in range(3)]
    storage.put("logs/run-1.txt", io.BytesIO(b"log"), 3)
    assert list(storage.list_keys()) == sorted([*keys, "logs/run-1.txt"])
    storage.delete(keys[0])
    assert keys[0] not in list(storage.list_keys())


def test_unreachable_minio_is_storage_unavailable():
    store = MinioStorage(f"127.0.0.1:{free_loopback_port()}", "a", "b", "bucket", secure=False)
    store.client._http.connection_pool_kw["retries"] = False  # fail fast, no retries
    with pytest.raises(StorageUnavailable):
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.put("k", io.BytesIO(b"x"), 1)


def test_local_keys_cannot_escape_the_storage_root(tmp_path):
    store = LocalStorage(tmp_path / "objects")
    with pytest.raises(ValueError, match="not a storage key"):
        store.put("../outside", io.BytesIO(b"x"), 1)
    assert not (tmp_path / "outside").exists()


def test_local_put_leaves_no_partial_object_when_the_reader_fails(tmp_path):
    store = LocalStorage(tmp_path / "objects")

    class BrokenReader(io.RawIOBase):
        def read(self, size=-1):
            raise OSError("client went away")

    with pytest.raises(StorageUnavailable):
        store.put("submissions/ab/abc", BrokenReader(), 10)
    assert not store.exists("submissions/ab/abc")
    assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
