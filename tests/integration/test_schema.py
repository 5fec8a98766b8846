"""The Alembic chain builds the whole schema, unbuilds it, and the audit log is append-only."""

from pathlib import Path

import psycopg
import pytest

import portal.leaderboard
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


def test_migrated_leaderboard_ranks_exactly_as_ranking_sql_says(services):
    """A reader of portal/leaderboard/ranking.sql reads the ranking the database runs:
    the migrations keep their own frozen copies, so this catches the file and the
    migrated view drifting apart (PostgreSQL deparses both the same way)."""
    ranking = Path(portal.leaderboard.__file__).with_name("ranking.sql").read_text()
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        conn.execute(f"CREATE TEMPORARY VIEW ranking_from_file AS {ranking}")
        migrated, from_file = (
            conn.execute("SELECT pg_get_viewdef(%s::regclass)", (name,)).fetchone()[0]
            for name in ("leaderboard", "ranking_from_file")
        )
        conn.rollback()
    assert from_file == migrated


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
