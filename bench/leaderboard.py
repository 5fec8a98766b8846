"""Leaderboard cost: view refresh, full fragment and 304 polls, against /healthz.

    uv run python bench/leaderboard.py [--teams 1000 --submissions 50 --seeds 3]

Starts its own portal (embedded services, 2 workers), seeds one finished batch of
teams x submissions x seeds runs straight into PostgreSQL, then prints the
materialized-view refresh time and, under 50 concurrent pollers, p50/p95 of: the full
board fragment, the 304 answer to a matching ETag, and GET /healthz (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import psycopg
import redis
import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(__file__))
from _portal import ROOT, embedded_portal, percentile

sys.path.insert(0, str(ROOT))
from portal.core.embedded import EmbeddedPostgres, EmbeddedRedis
from portal.leaderboard.refresh import refresh

SEED_SQL = """
INSERT INTO team (name, email, token_hash, token_prefix)
SELECT 'bench team ' || t, 'bench' || t || '@example.org', md5('t' || t) || md5('u' || t), 'pt_x'
FROM generate_series(1, %(teams)s) AS t;

INSERT INTO submission (team_id, sha256, size_bytes, filename, storage_key, note, is_final,
                        created_at)
SELECT team.id, md5(team.id || '-' || s) || md5(s || '-' || team.id), 100, 's.py', 'k', '',
       false, now() - (s || ' minutes')::interval
FROM team, generate_series(1, %(submissions)s) AS s WHERE team.email LIKE 'bench%%';

INSERT INTO evaluation_batch (name, seeds, selection, status, started_at, kit)
VALUES ('bench', ARRAY(SELECT generate_series(1, %(seeds)s))::bigint[], 'unevaluated',
        'finished', now(), 'tsp');

INSERT INTO batch_submission (batch_id, submission_id, team_id, status, mean_score)
SELECT (SELECT max(id) FROM evaluation_batch), s.id, s.team_id, 'scored',
       round((random() * 10)::numeric, 2)
FROM submission AS s JOIN team ON team.id = s.team_id WHERE team.email LIKE 'bench%%';

INSERT INTO evaluation_run (batch_id, batch_submission_id, seed, status, score,
                            queue_position, attempts)
SELECT bs.batch_id, bs.id, seed, 'scored', bs.mean_score, 0, 1
FROM batch_submission AS bs, generate_series(1, %(seeds)s) AS seed;
"""


async def poll(
    url: str,
    path: str,
    concurrency: int,
    requests: int,
    headers: dict | None = None,
    expect: int = 200,
) -> list[float]:
    """`concurrency` clients each GET `path` in a loop; returns every latency."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def poller() -> None:
            for _ in range(requests // concurrency):
                started = time.perf_counter()
                response = await http.get(path, headers=headers or {})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == expect, response.status_code

        await asyncio.gather(*(poller() for _ in range(concurrency)))
    return latencies


def line(name: str, latencies: list[float]) -> tuple[float, float]:
    p50, p95 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000
    print(f"{name:<28} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms   ({len(latencies)} requests)")
    return p50, p95


async def measure(url: str, concurrency: int, requests: int) -> None:
    fragment = {"HX-Request": "true"}
    async with httpx.AsyncClient(base_url=url) as http:
        first = await http.get("/leaderboard", headers=fragment)
        tag = first.headers["etag"]
        rows = first.text.count("data-team=")
    print(f"fragment: {len(first.content)} bytes, {rows} rows shown per page")
    await poll(url, "/healthz", concurrency, concurrency * 2)  # warm up
    health = line("GET /healthz", await poll(url, "/healthz", concurrency, requests))
    full = line(
        "board fragment (200)", await poll(url, "/leaderboard", concurrency, requests, fragment)
    )
    not_modified = line(
        "board fragment (304)",
        await poll(
            url,
            "/leaderboard",
            concurrency,
            requests,
            {**fragment, "If-None-Match": tag},
            expect=304,
        ),
    )
    print(
        f"ratio to /healthz p50: full {full[0] / health[0]:.1f}x, 304 "
        f"{not_modified[0] / health[0]:.1f}x   (goals: 10x and 2x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=1000)
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with embedded_portal(workers=2) as (url, _token, env):
        data_dir = Path(env["PORTAL_DATA_DIR"])
        database_url = EmbeddedPostgres(data_dir).start()
        redis_url = EmbeddedRedis(data_dir).start()
        started = time.perf_counter()
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
            for statement in SEED_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, vars(args))
        runs = args.teams * args.submissions * args.seeds
        print(
            f"seeded {args.teams} teams x {args.submissions} submissions x {args.seeds} "
            f"seeds = {runs} runs in {time.perf_counter() - started:.1f} s"
        )
        engine = sa.create_engine(database_url)
        client = redis.Redis.from_url(redis_url)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            refresh(engine, client)
            timings.append(time.perf_counter() - started)
        print(
            f"REFRESH MATERIALIZED VIEW CONCURRENTLY: {min(timings) * 1000:.0f} ms "
            f"(best of 3; {', '.join(f'{t * 1000:.0f}' for t in timings)} ms)"
        )
        asyncio.run(measure(url, args.pollers, args.requests))
        engine.dispose()


if __name__ == "__main__":
    main()
