"""The Alembic chain builds the whole schema, unbuilds it, and the audit log is append-only."""

import psycopg
import pytest

from portal.core import migrations
from portal.core.db import psycopg_conninfo

EXPECTED_TABLES = {
    "team",
    "submission",
    "submission_quota",
    "llm_usage_log",
    "llm_usage_rate_limit",
    "evaluation_batch",
    "batch_submission",
    "evaluation_run",
    "audit_log",
}


def _scratch_database(services, name: str) -> str:
    admin_url = psycopg_conninfo(services.database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return services.database_url.rsplit("/", 1)[0] + f"/{name}"


def _tables(url: str) -> set[str]:
    with psycopg.connect(psycopg_conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_downgrade_to_base_then_upgrade_to_head(services):
    url = _scratch_database(services, "portal_migration_roundtrip")
    migrations.upgrade(url)
    assert EXPECTED_TABLES | {"leaderboard", "alembic_version"} <= _tables(url)

    migrations.downgrade(url, "base")
    assert _tables(url) == {"alembic_version"}

    migrations.upgrade(url)
    assert EXPECTED_TABLES | {"leaderboard"} <= _tables(url)


def test_timestamps_are_timestamptz(services):
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name LIKE '%%\\_at'"
        ).fetchall()
    assert rows, "expected *_at columns"
    assert {row[2] for row in rows} == {"timestamp with time zone"}, rows


def test_leaderboard_view_has_unique_index_for_concurrent_refresh(services):
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY leaderboard")


def test_audit_log_refuses_update_delete_and_truncate(services):
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (action, details) VALUES ('test.event', '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE audit_log SET action = 'rewritten'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE audit_log")
        assert conn.execute("SELECT action FROM audit_log").fetchall() == [("test.event",)]
