"""Admin CSV exports: each file's content read back, formula escaping, filters, who may
download, streaming of a large log, and the download links on the admin pages."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import psycopg

from portal.core.db import psycopg_conninfo
from portal.exports.service import ROWS_PER_CHUNK
from tests.fixtures.competition import set_clock
from tests.fixtures.factories import browser_login
from tests.fixtures.final_standings import Upload, seed_final
from tests.fixtures.leaderboard import seed_board, seed_public_scores

EXPORTS = (
    "/api/v1/exports/standings.csv",
    "/api/v1/exports/runs.csv?batch=1",
    "/api/v1/exports/submissions.csv",
    "/api/v1/exports/usage.csv",
    "/api/v1/exports/audit.csv",
)
BOM = "\ufeff"


def read_csv(response) -> list[dict[str, str]]:
    """The rows of a downloaded CSV, by header, after checking what every file shares."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    assert response.headers["content-disposition"].endswith('.csv"')
    text = response.content.decode("utf-8")
    assert text.startswith(BOM)  # so Excel reads UTF-8 (Korean names) correctly
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM), newline="")))


def sql(services, statement: str, params=()) -> list[tuple]:
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Public scores before the freeze (an hour ago), one after it, and the final picks.
BOARDS = {
    "Alpha": [Upload(timedelta(hours=-2), -3.5, final=10.0)],
    "Beta": [
        Upload(timedelta(hours=-2), 5.0, final=2.0),
        Upload(timedelta(minutes=-50), 9.0),
    ],
    "감자 팀": [Upload(timedelta(minutes=-150), 1.25, final=7.5)],
}


async def test_standings_export_writes_each_board_an_admin_sees_the_final_before_the_reveal(
    client, teams, services
):
    admin = await teams.admin()
    for name in BOARDS:
        await teams.create(name=name)
    ids = seed_final(services, BOARDS)

    def standings(board: str) -> list[tuple[str, ...]]:
        return [
            (row["rank"], row["team_id"], row["team"], row["score"], row["entries"])
            for row in read_csv(response_of[board])
        ]

    response_of = {
        board: await client.get(f"/api/v1/exports/standings.csv?board={board}", headers=admin.auth)
        for board in ("public", "live", "final")
    }
    alpha, beta, potato = (str(ids[name]) for name in BOARDS)
    # During the freeze the public board is the frozen one: Beta's later 9.0 is hidden.
    assert standings("public") == [
        ("1", beta, "Beta", "5.0", "1"),
        ("2", potato, "감자 팀", "1.25", "1"),
        ("3", alpha, "Alpha", "-3.5", "1"),  # a negative score stays a number
    ]
    assert 'filename="standings-frozen-' in response_of["public"].headers["content-disposition"]
    assert standings("live") == [
        ("1", beta, "Beta", "9.0", "2"),
        ("2", potato, "감자 팀", "1.25", "1"),
        ("3", alpha, "Alpha", "-3.5", "1"),
    ]
    final = read_csv(response_of["final"])
    assert [(row["rank"], row["team"], row["score"], row["frozen_rank"]) for row in final] == [
        ("1", "Alpha", "10.0", "3"),
        ("2", "감자 팀", "7.5", "2"),
        ("3", "Beta", "2.0", "1"),
    ]
    # The same search as the board's.
    searched = await client.get(
        "/api/v1/exports/standings.csv?board=live&q=감자", headers=admin.auth
    )
    assert [row["team"] for row in read_csv(searched)] == ["감자 팀"]


async def test_a_batch_standings_export_is_that_batchs_ranking(client, teams, services):
    admin = await teams.admin()
    for name in ("Ann", "Ben"):
        await teams.create(name=name)
    batch_id = seed_board(services, {"Ann": [("scored", 2.0)], "Ben": [("scored", 4.0)]})
    response = await client.get(
        f"/api/v1/exports/standings.csv?batch={batch_id}", headers=admin.auth
    )
    rows = read_csv(response)
    assert [(r["rank"], r["team"], r["score"], r["runs_done"]) for r in rows] == [
        ("1", "Ben", "4.0", "1"),
        ("2", "Ann", "2.0", "1"),
    ]
    assert f'filename="standings-batch-{batch_id}-' in response.headers["content-disposition"]
    unknown = await client.get("/api/v1/exports/standings.csv?batch=999", headers=admin.auth)
    assert unknown.status_code == 404
    assert "No started batch #999" in unknown.json()["error"]["message"]
    both = await client.get(
        f"/api/v1/exports/standings.csv?batch={batch_id}&board=live", headers=admin.auth
    )
    assert both.status_code == 422
    assert "either `board`" in both.json()["error"]["message"]


async def test_runs_export_lists_every_run_of_the_batch_with_its_accounting(
    client, teams, services
):
    admin = await teams.admin()
    ann, ben = await teams.create(name="Ann"), await teams.create(name="Ben")
    batch_id = seed_board(
        services,
        {"Ann": [("scored", -1.5), ("failed", None)], "Ben": [("scored", 3.0), ("scored", 4.0)]},
    )
    other_batch = seed_board(services, {"Ben": [("scored", 1.0)]}, batch_name="Round 2")
    started = datetime(2026, 11, 28, 4, 20, 0, 123456, tzinfo=UTC)
    sql(
        services,
        "UPDATE evaluation_run SET reason = %s, exit_code = 1, exit_signal = 9, "
        "duration_ms = 1500, cpu_user_ms = 1200, cpu_system_ms = 80, "
        "peak_memory_bytes = 209715200, output_bytes = 70000, output_truncated = true, "
        "worker_id = %s, started_at = %s, finished_at = %s, attempts = 2 "
        "WHERE status = 'failed'",
        ('Traceback:\n  line 3\nValueError: bad, "quoted"', "host-1:42", started, started),
    )
    rows = read_csv(
        await client.get(f"/api/v1/exports/runs.csv?batch={batch_id}", headers=admin.auth)
    )
    assert list(rows[0]) == [
        "run_id", "batch_id", "team_id", "team", "submission_id", "seed", "status", "score",
        "reason", "attempts", "exit_code", "exit_signal", "duration_ms", "cpu_user_ms",
        "cpu_system_ms", "peak_memory_bytes", "output_bytes", "output_truncated", "worker",
        "started_at", "finished_at",
    ]  # fmt: skip
    assert len(rows) == 4 and {row["batch_id"] for row in rows} == {str(batch_id)}
    by_key = {(row["team"], row["seed"]): row for row in rows}
    assert by_key[("Ann", "1")]["score"] == "-1.5"
    assert by_key[("Ann", "1")]["team_id"] == str(ann.id)
    assert by_key[("Ben", "2")]["score"] == "4.0" and by_key[("Ben", "2")]["team_id"] == str(ben.id)
    failed = by_key[("Ann", "2")]
    assert failed["status"] == "failed" and failed["score"] == ""
    assert failed["reason"] == 'Traceback:\n  line 3\nValueError: bad, "quoted"'
    assert (failed["attempts"], failed["exit_code"], failed["exit_signal"]) == ("2", "1", "9")
    assert (failed["duration_ms"], failed["cpu_user_ms"], failed["cpu_system_ms"]) == (
        "1500",
        "1200",
        "80",
    )
    assert (failed["peak_memory_bytes"], failed["output_bytes"]) == ("209715200", "70000")
    assert (failed["output_truncated"], failed["worker"]) == ("true", "host-1:42")
    assert failed["started_at"] == failed["finished_at"] == "2026-11-28T04:20:00.123456Z"
    # Not measured is empty, not zero.
    assert by_key[("Ben", "1")]["cpu_user_ms"] == "" and by_key[("Ben", "1")]["started_at"] == ""

    assert (
        len(
            read_csv(
                await client.get(
                    f"/api/v1/exports/runs.csv?batch={other_batch}", headers=admin.auth
                )
            )
        )
        == 1
    )
    unknown = await client.get("/api/v1/exports/runs.csv?batch=999", headers=admin.auth)
    assert unknown.status_code == 404 and "#999" in unknown.json()["error"]["message"]
    missing = await client.get("/api/v1/exports/runs.csv", headers=admin.auth)
    assert missing.status_code == 422 and "batch" in json.dumps(missing.json()["error"])


async def test_submissions_export_has_every_upload_with_its_public_result_and_pick(
    client, teams, services
):
    admin = await teams.admin()
    ann, ben = await teams.create(name="Ann"), await teams.create(name="Ben")
    at = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    ids = seed_public_scores(
        services, {"Ann": [(0.5, at), (None, at + timedelta(minutes=1))], "Ben": [(-2.0, at)]}
    )
    sql(
        services,
        "UPDATE submission SET filename = %s, size_bytes = 895, is_final = true WHERE id = %s",
        ("=외판원_2opt.py", ids["Ann"][0]),
    )
    never_evaluated = sql(
        services,
        "INSERT INTO submission (team_id, sha256, size_bytes, filename, storage_key, note, "
        "is_final, created_at) VALUES (%s, %s, 10, 'late.py', 'k', '', false, %s) RETURNING id",
        (ben.id, "f" * 64, at + timedelta(minutes=5)),
    )[0][0]
    sha = dict(sql(services, "SELECT id, sha256 FROM submission"))

    rows = read_csv(await client.get("/api/v1/exports/submissions.csv", headers=admin.auth))
    assert [
        tuple(row.values()) for row in rows
    ] == [
        (str(ids["Ann"][0]), str(ann.id), "Ann", "'=외판원_2opt.py", sha[ids["Ann"][0]], "895",
         "2026-11-28T09:00:00Z", "scored", "0.5", "true"),
        (str(ids["Ben"][0]), str(ben.id), "Ben", "s.py", sha[ids["Ben"][0]], "1",
         "2026-11-28T09:00:00Z", "scored", "-2.0", "false"),
        (str(ids["Ann"][1]), str(ann.id), "Ann", "s.py", sha[ids["Ann"][1]], "1",
         "2026-11-28T09:01:00Z", "running", "", "false"),
        (str(never_evaluated), str(ben.id), "Ben", "late.py", "f" * 64, "10",
         "2026-11-28T09:05:00Z", "not evaluated", "", "false"),
    ]  # fmt: skip
    assert list(rows[0]) == [
        "submission_id", "team_id", "team", "filename", "sha256", "size_bytes", "uploaded_at",
        "public_status", "public_score", "final_pick",
    ]  # fmt: skip


async def test_usage_export_counts_calls_per_team_and_minute_in_the_chosen_window(
    client, teams, services
):
    admin = await teams.admin()
    ann, ben = await teams.create(name="Ann"), await teams.create(name="벤")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    recent, old = now - timedelta(minutes=10), now - timedelta(hours=3)
    for team, outcome, prompt, completion, at in (
        (ann, "allowed", 10, 5, recent + timedelta(seconds=5)),
        (ann, "allowed", 20, 7, recent + timedelta(seconds=50)),
        (ann, "refused", 0, 0, recent + timedelta(seconds=55)),
        (ben, "allowed", 3, 4, recent + timedelta(seconds=1)),
        (ann, "failed", 8, 0, old),
    ):
        sql(
            services,
            "INSERT INTO llm_usage_log (created_at, team_id, model, prompt_tokens, "
            "completion_tokens, latency_ms, status_code, outcome, refusal, source) "
            "VALUES (%s, %s, 'echo', %s, %s, 12.5, %s, %s, %s, 'dev')",
            (
                at,
                team.id,
                prompt,
                completion,
                429 if outcome == "refused" else 200,
                outcome,
                "tokens" if outcome == "refused" else None,
            ),
        )

    def minutes(rows):
        return [
            (r["team"], r["minute"], r["calls"], r["allowed"], r["refused"], r["failed"],
             r["prompt_tokens"], r["completion_tokens"])
            for r in rows
        ]  # fmt: skip

    hour = await client.get("/api/v1/exports/usage.csv?window=hour", headers=admin.auth)
    assert 'filename="usage-hour-' in hour.headers["content-disposition"]
    hour_rows = read_csv(hour)
    assert minutes(hour_rows) == [
        ("Ann", iso(recent), "3", "2", "1", "0", "30", "12"),
        ("벤", iso(recent), "1", "1", "0", "0", "3", "4"),
    ]
    # Which budget refused, and the latency of the calls that went upstream.
    assert [
        (r["refused_requests"], r["refused_tokens"], r["refused_parallel"], r["refused_model"])
        for r in hour_rows
    ] == [("0", "1", "0", "0"), ("0", "0", "0", "0")]
    assert [r["mean_latency_ms"] for r in hour_rows] == ["12.5", "12.5"]
    everything = read_csv(await client.get("/api/v1/exports/usage.csv", headers=admin.auth))
    assert minutes(everything)[0] == ("Ann", iso(old), "1", "0", "0", "1", "8", "0")
    assert len(everything) == 3
    one_team = await client.get(
        f"/api/v1/exports/usage.csv?window=day&team_id={ben.id}", headers=admin.auth
    )
    assert [row["team"] for row in read_csv(one_team)] == ["벤"]
    unknown = await client.get("/api/v1/exports/usage.csv?team_id=999", headers=admin.auth)
    assert unknown.status_code == 404
    bad = await client.get("/api/v1/exports/usage.csv?window=week", headers=admin.auth)
    assert bad.status_code == 422 and "window" in json.dumps(bad.json()["error"])


async def test_audit_export_applies_the_audit_filters(client, teams, services):
    admin = await teams.admin(name="Boss")
    alpha = await teams.create()
    await client.post("/api/v1/auth/login", json={"email": alpha.email, "api_token": "pt_bad"})
    await client.post(
        "/api/v1/teams", json={"name": "새 팀", "email": "new@example.org"}, headers=admin.auth
    )
    everything = read_csv(await client.get("/api/v1/exports/audit.csv", headers=admin.auth))
    listed = (await client.get("/api/v1/audit?size=200", headers=admin.auth)).json()["items"]
    assert [row["id"] for row in everything] == [str(entry["id"]) for entry in listed]
    created = next(
        row for row in everything if row["action"] == "team.create" and row["actor_team"]
    )
    assert created["actor_team"] == "Boss" and created["actor_role"] == "admin"
    assert created["created_at"].endswith("Z")
    assert json.loads(created["details"]) == next(
        entry["details"] for entry in listed if entry["id"] == int(created["id"])
    )

    auth = read_csv(await client.get("/api/v1/exports/audit.csv?action=auth", headers=admin.auth))
    assert {row["action"] for row in auth} == {"auth.login_failed"}
    by_admin = read_csv(
        await client.get(f"/api/v1/exports/audit.csv?actor={admin.id}", headers=admin.auth)
    )
    assert {row["action"] for row in by_admin} == {"team.create"}
    yesterday = date.today() - timedelta(days=1)
    before = await client.get(f"/api/v1/exports/audit.csv?until={yesterday}", headers=admin.auth)
    assert read_csv(before) == []
    # An empty field (a GET form's) is no filter, as on the API.
    blank = await client.get("/api/v1/exports/audit.csv?actor=&since=", headers=admin.auth)
    assert len(read_csv(blank)) == len(everything)
    bad = await client.get("/api/v1/exports/audit.csv?since=yesterday", headers=admin.auth)
    assert bad.status_code == 422
    assert "is not a date; use YYYY-MM-DD" in json.dumps(bad.json()["error"])


HOSTILE_NAMES = (
    '=HYPERLINK("http://x","y")',
    "+1",
    "-2+3",
    "@SUM(A1)",
    'Kim, Lee & "Park"',
    "서울 감자 팀",
)
# Names no form accepts (control characters), as an old row or a direct import could hold.
STORED_ONLY_NAMES = {"Two\nlines": "Two\nlines", "\tTabbed": "'\tTabbed", "\rReturn": "'\rReturn"}


async def test_cells_that_start_like_a_formula_are_escaped_and_numbers_stay_numbers(
    client, teams, services
):
    admin = await teams.admin()
    for name in HOSTILE_NAMES:
        await teams.create(name=name)
    for stored in STORED_ONLY_NAMES:
        placeholder = await teams.create()
        sql(services, "UPDATE team SET name = %s WHERE id = %s", (stored, placeholder.id))
    at = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    names = [*HOSTILE_NAMES, *STORED_ONLY_NAMES]
    seed_public_scores(services, {name: [(-3.5 - number, at)] for number, name in enumerate(names)})

    response = await client.get("/api/v1/exports/standings.csv?board=live", headers=admin.auth)
    rows = read_csv(response)
    assert [row["team"] for row in rows] == [
        '\'=HYPERLINK("http://x","y")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        'Kim, Lee & "Park"',
        "서울 감자 팀",
        *STORED_ONLY_NAMES.values(),
    ]
    assert [row["score"] for row in rows] == [str(-3.5 - n) for n in range(len(names))]
    # Excel's rules: a comma, quote or line break inside a cell is quoted, quotes doubled.
    raw = response.content.decode("utf-8")
    assert '"Kim, Lee & ""Park"""' in raw and '"Two\nlines"' in raw
    assert ",-3.5," in raw  # the number itself, unquoted and unescaped

    # The same escaping wherever a team's name is written: as an audit entry's actor...
    plus_one = await teams.create(name="+1 again")
    await client.post(
        "/api/v1/auth/login", json={"email": plus_one.email, "api_token": plus_one.token}
    )
    audit = read_csv(await client.get("/api/v1/exports/audit.csv?action=auth", headers=admin.auth))
    assert [row["actor_team"] for row in audit] == ["'+1 again"]
    # ...and beside each submission.
    submissions = read_csv(await client.get("/api/v1/exports/submissions.csv", headers=admin.auth))
    assert [row["team"] for row in submissions] == [row["team"] for row in rows]


async def test_exports_are_for_admins_only(client, teams):
    participant = await teams.create()
    for url in EXPORTS:
        anonymous = await client.get(url)
        assert anonymous.status_code == 401, url
        refused = await client.get(url, headers=participant.auth)
        assert refused.status_code == 403, url
        assert refused.json()["error"]["code"] == "admin_required"


async def test_a_download_is_named_after_the_day_it_was_made(app, client, teams):
    admin = await teams.admin()
    set_clock(app, datetime(2027, 3, 9, 23, 30, tzinfo=UTC))
    response = await client.get("/api/v1/exports/submissions.csv", headers=admin.auth)
    assert response.headers["content-disposition"] == (
        'attachment; filename="submissions-2027-03-09.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert read_csv(response) == []  # the header row alone
    assert response.content.decode("utf-8").startswith(BOM + "submission_id,team_id,team,")


async def asgi_body_parts(app, path: str, headers: dict[str, str]) -> tuple[int, list[bytes]]:
    """Call the app as a server would and keep each body message it sends, as sent."""
    parts: list[bytes] = []
    status = 0
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }

    requested, finished = False, asyncio.Event()

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # The client stays connected until the whole body has arrived.
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            if message.get("body"):
                parts.append(message["body"])
            if not message.get("more_body"):
                finished.set()

    await app(scope, receive, send)
    return status, parts


async def test_a_large_audit_export_is_streamed_in_parts(app, client, teams, services):
    admin = await teams.admin()
    sql(
        services,
        "INSERT INTO audit_log (action, target_type, target_id, details) "
        "SELECT 'drill.entry', 'row', n::text, jsonb_build_object('n', n, 'name', '=1+' || n) "
        "FROM generate_series(1, 5000) AS n",
    )
    status, parts = await asgi_body_parts(app, "/api/v1/exports/audit.csv?action=drill", admin.auth)
    assert status == 200
    # Sent as it is read, a partition at a time, not built whole and sent at once.
    assert len(parts) >= 5000 // ROWS_PER_CHUNK
    text = b"".join(parts).decode("utf-8").removeprefix(BOM)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 5000
    assert [int(row["target_id"]) for row in rows] == list(range(5000, 0, -1))
    assert json.loads(rows[0]["details"]) == {"n": 5000, "name": "=1+5000"}


async def test_admin_pages_link_to_their_csv_downloads(client, teams, services):
    admin = await teams.admin()
    await teams.create(name="Ann")
    batch_id = seed_board(services, {"Ann": [("scored", 1.0)]})
    await browser_login(client, admin)

    board = (await client.get("/leaderboard?board=live")).text
    assert 'href="/api/v1/exports/standings.csv?board=live" download' in board
    searched = (await client.get("/leaderboard?board=final&q=A%26B")).text
    assert 'href="/api/v1/exports/standings.csv?board=final&amp;q=A%26B" download' in searched
    batch = (await client.get(f"/admin/batches/{batch_id}")).text
    assert f'href="/api/v1/exports/runs.csv?batch={batch_id}" download' in batch
    teams_page = (await client.get("/admin/teams")).text
    assert 'href="/api/v1/exports/submissions.csv" download' in teams_page
    usage = (await client.get("/admin/usage?window=day")).text
    assert 'href="/api/v1/exports/usage.csv?window=day" download' in usage
    audit = (await client.get("/admin/audit?action=auth&since=2026-11-01&actor=")).text
    assert 'href="/api/v1/exports/audit.csv?action=auth&amp;since=2026-11-01" download' in audit
    # A filter the page ignored (and says so) is left out of the download too.
    ignored = (await client.get("/admin/audit?action=team&since=yesterday")).text
    assert "is not a date" in ignored
    assert 'href="/api/v1/exports/audit.csv?action=team" download' in ignored
    # The download links are real links: they work with the cookie the page uses.
    downloaded = await client.get(f"/api/v1/exports/runs.csv?batch={batch_id}")
    assert [row["team"] for row in read_csv(downloaded)] == ["Ann"]


async def test_participants_see_no_download_link_on_the_leaderboard(client, teams, services):
    participant = await teams.create(name="Ann")
    seed_public_scores(services, {"Ann": [(1.0, datetime.now(UTC))]})
    await browser_login(client, participant)
    board = (await client.get("/leaderboard")).text
    assert "Ann" in board and "/api/v1/exports/" not in board
