"""`portal backup` and `portal restore`, run as real commands: a populated portal goes into
one archive and comes back whole in a fresh place (an empty data directory, a fresh
database, a fresh bucket), and damaged archives or occupied targets are refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from portal.backup.errors import BackupError
from portal.backup.postgres import Connection, find_client_tool
from portal.core.db import psycopg_conninfo
from portal.core.embedded import EmbeddedPostgres
from portal.core.storage import LocalStorage, Storage
from portal.main import create_app
from tests.fixtures.cli import embedded_env, portal
from tests.fixtures.clients import make_client
from tests.fixtures.competition import score_runs, worker_context
from tests.fixtures.evaluation import upload
from tests.fixtures.factories import TeamFactory
from tests.fixtures.servers import S3_ACCESS_KEY, S3_SECRET_KEY, fresh_bucket

# Bigger than any read or write chunk on the way, so objects really are streamed.
LARGE_OBJECT = os.urandom(3 * 1024 * 1024 + 17)
LARGE_KEY = "imports/kit-data.bin"


async def populate(app, storage: Storage) -> dict:
    """A portal in use: teams that logged in (and one failed login), uploads, a scored
    batch, LLM calls, and one large object. Returns the alpha team and its submission."""
    teams = TeamFactory(app.state.sessionmaker)
    async with make_client(app) as client:
        admin, alpha, beta = await teams.admin(), await teams.create(), await teams.create()
        for team in (alpha, beta):
            login = {"email": team.email, "api_token": team.token}
            assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
        wrong = {"email": alpha.email, "api_token": "pt_wrong"}
        assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
        first = await upload(client, alpha, "a.py", b"print('alpha one')\n")
        second = await upload(client, alpha, "b.py", b"print('alpha two')\n")
        third = await upload(client, beta, "c.py", b"print('beta')\n")
        created = await client.post(
            "/api/v1/batches",
            headers=admin.auth,
            json={"name": "nightly", "seeds": [1, 2], "selection": "unevaluated"},
        )
        batch_id = created.json()["id"]
        assert (
            await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
        ).is_success
        score_runs(
            worker_context(app.state.settings), batch_id, {first: 3.0, second: 4.0, third: 1.0}
        )
        chat = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}
        for team in (alpha, beta):
            call = await client.post("/llm/v1/chat/completions", json=chat, headers=team.auth)
            assert call.status_code == 200
        await app.state.llm_gateway.recorder.flush()
    storage.put(LARGE_KEY, io.BytesIO(LARGE_OBJECT), len(LARGE_OBJECT))
    return {"team": alpha, "submission_id": first, "content": b"print('alpha one')\n"}


def row_counts(database_url: str) -> dict[str, int]:
    """Rows in every table of the portal's schema. (Materialized views are derived, and
    a restore refreshes them, so a board the workers had not refreshed yet is current
    after a restore.)"""
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        names = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        return {
            name: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            ).fetchone()[0]
            for (name,) in names
        }


def revision(database_url: str) -> str:
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def checksums(storage: Storage) -> dict[str, str]:
    found = {}
    for key in storage.list_keys():
        digest = hashlib.sha256()
        for chunk in storage.get(key):
            digest.update(chunk)
        found[key] = digest.hexdigest()
    return found


def assert_audit_log_is_append_only(database_url: str) -> None:
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
        for statement in (
            "UPDATE audit_log SET action = 'rewritten'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)


def manifest_of(archive: Path) -> dict:
    with tarfile.open(archive, "r:*") as tar:
        return json.load(tar.extractfile("manifest.json"))


def configured_env(database_url: str, storage_dir: Path) -> dict:
    return {"PORTAL_DATABASE_URL": database_url, "PORTAL_STORAGE_LOCAL_DIR": str(storage_dir)}


def minio_env(database_url: str, endpoint: str, bucket: str) -> dict:
    return {
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_STORAGE_BACKEND": "minio",
        "PORTAL_MINIO_ENDPOINT": endpoint,
        "PORTAL_MINIO_ACCESS_KEY": S3_ACCESS_KEY,
        "PORTAL_MINIO_SECRET_KEY": S3_SECRET_KEY,
        "PORTAL_MINIO_BUCKET": bucket,
    }


@contextmanager
def fresh_database(services) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = f"restore_{uuid.uuid4().hex[:8]}"
    admin = psycopg_conninfo(
        make_url(services.database_url).set(database="postgres").render_as_string(False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(services.database_url).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def empty_data_dir(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)  # the embedded postgres runs as an unprivileged user
    return tmp_path / "restored"


async def populated_backup(app, settings, services, tmp_path: Path) -> Path:
    """The test portal (its database, its local storage) populated, then backed up."""
    await populate(app, LocalStorage(settings.local_storage_path))
    archive = tmp_path / "portal.tar"
    portal(
        "backup",
        "-o",
        str(archive),
        env=configured_env(services.database_url, settings.local_storage_path),
    )
    return archive


async def test_a_restored_portal_has_every_row_object_and_its_append_only_audit_log(
    app, settings, services, tmp_path
):
    source_storage = LocalStorage(settings.local_storage_path)
    alpha = await populate(app, source_storage)
    source_counts = row_counts(services.database_url)
    for table in ("team", "submission", "evaluation_run", "llm_usage_log", "audit_log"):
        assert source_counts[table] > 0, table
    archive = tmp_path / "portal.tar.gz"

    portal(
        "backup",
        "--output",
        str(archive),
        env=configured_env(services.database_url, settings.local_storage_path),
    )
    data_dir = empty_data_dir(tmp_path)
    restored = portal("restore", str(archive), env=embedded_env(data_dir))
    assert "Restored" in restored.stdout

    with embedded_postgres(data_dir) as restored_url:
        assert row_counts(restored_url) == source_counts
        assert revision(restored_url) == revision(services.database_url)
        restored_storage = LocalStorage(data_dir / "objects")
        assert checksums(restored_storage) == checksums(source_storage)
        assert checksums(restored_storage)[LARGE_KEY] == hashlib.sha256(LARGE_OBJECT).hexdigest()
        assert_audit_log_is_append_only(restored_url)

        # The restored portal serves: the team's token still works and its file is there.
        restored_settings = settings.model_copy(
            update={"database_url": restored_url, "storage_local_dir": data_dir / "objects"}
        )
        restored_app = create_app(restored_settings)
        async with (
            restored_app.router.lifespan_context(restored_app),
            make_client(restored_app) as client,
        ):
            response = await client.get(
                f"/api/v1/submissions/{alpha['submission_id']}/file", headers=alpha["team"].auth
            )
            assert response.status_code == 200 and response.content == alpha["content"]

        # A backup of the restored data directory's own embedded servers says the same.
        again = tmp_path / "again.tar"
        portal("backup", "--output", str(again), env=embedded_env(data_dir))
        assert manifest_of(again)["counts"] == manifest_of(archive)["counts"]


async def test_backup_and_restore_between_minio_buckets(
    app, settings, services, s3_endpoint, tmp_path
):
    source_bucket = fresh_bucket(s3_endpoint)
    minio_app = create_app(
        settings.model_copy(
            update={
                "storage_backend": "minio",
                "minio_endpoint": s3_endpoint,
                "minio_access_key": S3_ACCESS_KEY,
                "minio_secret_key": S3_SECRET_KEY,
                "minio_bucket": source_bucket.bucket,
            }
        )
    )
    async with minio_app.router.lifespan_context(minio_app):
        await populate(minio_app, source_bucket)
    archive = tmp_path / "portal.tar"
    portal(
        "backup",
        "-o",
        str(archive),
        env=minio_env(services.database_url, s3_endpoint, source_bucket.bucket),
    )
    assert manifest_of(archive)["counts"]["objects"] == 4  # three uploads, one large object

    target_bucket = f"restored-{uuid.uuid4().hex[:8]}"
    with fresh_database(services) as target_url:
        portal("restore", str(archive), env=minio_env(target_url, s3_endpoint, target_bucket))
        assert row_counts(target_url) == row_counts(services.database_url)
        assert_audit_log_is_append_only(target_url)
    restored = fresh_bucket(s3_endpoint)
    restored.bucket = target_bucket
    assert checksums(restored) == checksums(source_bucket)


async def test_restore_refuses_a_database_holding_data_unless_forced(
    app, settings, services, tmp_path
):
    archive = await populated_backup(app, settings, services, tmp_path)

    with fresh_database(services) as target_url:
        env = configured_env(target_url, tmp_path / "target-objects")
        portal("restore", str(archive), env=env)
        with psycopg.connect(psycopg_conninfo(target_url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO team (name, email, token_hash, token_prefix) "
                "VALUES ('Late', 'late@example.org', 'x', 'x')"
            )

        refused = portal("restore", str(archive), env=env, check=False)
        assert refused.returncode == 1
        assert "refusing to restore over existing data" in refused.stderr
        assert "database" in refused.stderr and "object storage" in refused.stderr
        assert "--force" in refused.stderr
        assert row_counts(target_url)["team"] == row_counts(services.database_url)["team"] + 1

        portal("restore", str(archive), "--force", env=env)
        assert row_counts(target_url) == row_counts(services.database_url)
        assert_audit_log_is_append_only(target_url)


async def test_restore_refuses_storage_that_already_holds_objects(
    app, settings, services, tmp_path
):
    archive = await populated_backup(app, settings, services, tmp_path)
    target_storage = LocalStorage(tmp_path / "target-objects")
    target_storage.put("submissions/00/leftover", io.BytesIO(b"x = 0\n"), 6)

    with fresh_database(services) as target_url:
        refused = portal(
            "restore",
            str(archive),
            env=configured_env(target_url, target_storage.root),
            check=False,
        )
        assert refused.returncode == 1
        assert (
            "object storage already holds objects (such as submissions/00/leftover)"
            in refused.stderr
        )
        assert "schema is not empty" not in refused.stderr  # the database was empty
        assert row_counts(target_url) == {}


async def test_a_tampered_or_truncated_archive_is_refused_before_anything_is_touched(
    app, settings, services, tmp_path
):
    archive = await populated_backup(app, settings, services, tmp_path)
    content = archive.read_bytes()
    data_dir = empty_data_dir(tmp_path)

    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(content.replace(b"print('beta')", b"print('BETA')"))
    refused = portal("restore", str(tampered), env=embedded_env(data_dir), check=False)
    assert refused.returncode == 1
    assert "is corrupted" in refused.stderr and "sha256 differs" in refused.stderr
    assert "objects/submissions/" in refused.stderr
    assert not data_dir.exists()  # not even the embedded database was started

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(content[: len(content) // 2])
    refused = portal("restore", str(truncated), env=embedded_env(data_dir), check=False)
    assert refused.returncode == 1
    assert "truncated or corrupted" in refused.stderr or "has no manifest.json" in refused.stderr
    assert not data_dir.exists()


def test_a_server_without_a_matching_pg_dump_is_refused_by_name():
    with pytest.raises(BackupError, match=r"PostgreSQL 99 and needs pg_dump 99") as refused:
        find_client_tool("pg_dump", 99)
    assert "postgresql-client-99" in str(refused.value)


def test_the_database_password_reaches_pg_dump_through_the_environment_not_its_arguments():
    connection = Connection.from_url("postgresql://portal:s3cr%40t@db:5432/portal?sslmode=require")
    assert "s3cr" not in connection.conninfo  # command lines are visible to every user
    assert connection.conninfo == "postgresql://portal@db:5432/portal?sslmode=require"
    assert connection.environment()["PGPASSWORD"] == "s3cr@t"


def with_members(
    archive: Path, output: Path, extra: list[tarfile.TarInfo | tuple[str, bytes]]
) -> Path:
    """`archive` rewritten with `extra` members (files as (name, content), or TarInfo
    links) before a manifest that lists every member with its true checksum, as a
    careful attacker or a foreign tool would write it."""
    members = {}
    with tarfile.open(archive, "r:*") as source, tarfile.open(output, "w") as target:
        manifest = json.load(source.extractfile("manifest.json"))
        files = [
            (info.name, source.extractfile(info).read())
            for info in source
            if info.name != "manifest.json"
        ]
        for entry in [*files, *extra]:
            if isinstance(entry, tarfile.TarInfo):
                target.addfile(entry)
                content = b""
                name = entry.name
            else:
                name, content = entry
                info = tarfile.TarInfo(name)
                info.size = len(content)
                target.addfile(info, io.BytesIO(content))
            members[name] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        manifest["members"] = members
        raw = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(raw)
        target.addfile(info, io.BytesIO(raw))
    return output


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


async def test_restore_refuses_traversal_links_and_repeated_members_before_touching_anything(
    app, settings, services, tmp_path
):
    archive = await populated_backup(app, settings, services, tmp_path)
    data_dir = empty_data_dir(tmp_path)
    escaped = tmp_path / "escaped"  # where ../ names would land, beside the data directory
    hostile = {
        "a path out of the storage": [("objects/../../escaped", b"x = 1\n")],
        "an absolute path": [(f"objects/{escaped}", b"x = 1\n")],
        "a name outside objects/": [("../escaped", b"x = 1\n")],
        "an empty object key": [("objects/", b"x = 1\n")],
        "a dot segment": [("objects/submissions/./escaped", b"x = 1\n")],
        "a symlink": [link("objects/submissions/passwd", "/etc/passwd", tarfile.SYMTYPE)],
        "a hard link": [link("objects/submissions/dump", "database.pgdump", tarfile.LNKTYPE)],
        "a member twice": [("objects/twice", b"first\n"), ("objects/twice", b"second\n")],
    }
    for case, extra in hostile.items():
        crafted = with_members(archive, tmp_path / "crafted.tar", extra)
        refused = portal("restore", str(crafted), env=embedded_env(data_dir), check=False)
        assert refused.returncode == 1, case
        assert "Traceback" not in refused.stderr, case
        assert "nothing was restored" in refused.stderr.lower(), (case, refused.stderr)
        name = extra[-1].name if isinstance(extra[-1], tarfile.TarInfo) else extra[-1][0]
        assert repr(name) in refused.stderr, (case, refused.stderr)
        assert not data_dir.exists(), case  # not even the embedded database was started
        assert not escaped.exists(), case
