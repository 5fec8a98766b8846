"""System page cost with a big event's data: each of its queries, and the whole report.

    uv run python bench/system_page.py [--runs 100000 --calls 300000]

Starts embedded PostgreSQL and Redis in a temp dir, seeds `--runs` evaluation runs
(most scored over the last day, a few thousand queued, failures scattered) and
`--calls` gateway calls over the last day, runs VACUUM ANALYZE, then prints the median
time of each query the page makes and of the whole report (the page's live part, as
every open System page asks for it every 5 s), over 20 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from portal.core import migrations
from portal.core.db import create_engine, create_sessionmaker, psycopg_conninfo
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis
from portal.core.redis import create_redis
from portal.core.time import utcnow
from portal.system import service

SEED_SQL = """
INSERT INTO team (name, email, token_hash, token_prefix)
SELECT 'bench team ' || t, 'bench' || t || '@example.org', md5('t' || t) || md5('u' || t), 'pt_x'
FROM generate_series(1, 200) AS t;

INSERT INTO evaluation_batch (name, seeds, selection, kind, status, started_at, kit)
VALUES ('Public scores', '{1,2,3}', 'uploads', 'public', 'running', now(), 'tsp'),
       ('Round 1', '{1,2,3}', 'final_picks', 'adhoc', 'running', now(), 'tsp');

INSERT INTO submission (team_id, sha256, size_bytes, filename, storage_key, note, is_final)
SELECT 1 + n %% 200, md5('s' || n) || md5(n || 's'), 100, 's.py', 'k', '', false
FROM generate_series(1, %(entries)s) AS n;

INSERT INTO batch_submission (batch_id, submission_id, team_id, status)
SELECT 1 + id %% 2, id, team_id, 'scored' FROM submission;

INSERT INTO evaluation_run (batch_id, batch_submission_id, seed, status, queue_position,
                            attempts, reason, queued_at, finished_at)
SELECT entry.batch_id, entry.id, seed,
       CASE WHEN n %% 25 = 0 THEN 'queued' WHEN n %% 40 = 1 THEN 'failed'
            WHEN n %% 97 = 2 THEN 'timeout' ELSE 'scored' END,
       n, 1, CASE WHEN n %% 40 = 1 THEN 'Exited with code 1.' END,
       now() - (n %% 86400) * interval '1 s',
       CASE WHEN n %% 25 <> 0 THEN now() - (n %% 86400) * interval '1 s' END
FROM batch_submission AS entry, generate_series(1, 3) AS seed,
     LATERAL (SELECT entry.id * 3 + seed AS n) AS numbered;

INSERT INTO llm_usage_log (created_at, team_id, model, status_code, outcome, prompt_tokens,
                           completion_tokens, latency_ms, source)
SELECT now() - interval '1 day' + n * (interval '1 day' / %(calls)s), 1 + n %% 200, 'echo',
       CASE WHEN n %% 9 = 0 THEN 429 ELSE 200 END,
       CASE WHEN n %% 9 = 0 THEN 'refused' ELSE 'allowed' END, 10, 10, 5, 'dev'
FROM generate_series(1, %(calls)s) AS n;
"""
ROUNDS = 20


async def measure(database_url: str, redis_url: str) -> None:
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    redis = create_redis(redis_url)
    now = utcnow()
    parts = {
        "queue (counts by kind, oldest)": lambda s: service.queue(s, now),
        "running runs": service.running_runs,
        "runs finished per minute": lambda s: service.finished_runs(s, now),
        "recent failures": service.recent_failures,
        "refusals (gateway, uploads)": lambda s: service.refusals(s, now),
        "row counts (full page only)": service.inventory,
        "live part, whole": lambda s: service.report(
            s, redis, now=now, stale_after_seconds=30, with_inventory=False
        ),
    }
    try:
        for name, query in parts.items():
            times = []
            for _ in range(ROUNDS):
                async with sessionmaker() as session:
                    started = time.perf_counter()
                    await query(session)
                    times.append((time.perf_counter() - started) * 1000)
            print(f"{name:34s} median {statistics.median(times):7.2f} ms")
    finally:
        await redis.aclose()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as data_dir:
        os.chmod(data_dir, 0o755)
        postgres, redis = EmbeddedPostgres(Path(data_dir)), EmbeddedRedis(Path(data_dir))
        try:
            database_url, redis_url = postgres.start(), redis.start()
            migrations.upgrade(database_url)
            with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
                for statement in SEED_SQL.split(";\n\n"):
                    conn.execute(statement, {"entries": args.runs // 3, "calls": args.calls})
                conn.execute("VACUUM ANALYZE")
                runs = conn.execute("SELECT count(*) FROM evaluation_run").fetchone()[0]
                calls = conn.execute("SELECT count(*) FROM llm_usage_log").fetchone()[0]
            print(f"{runs} runs, {calls} gateway calls")
            asyncio.run(measure(database_url, redis_url))
        finally:
            redis.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
