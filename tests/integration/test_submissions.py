"""Uploads, the daily quota, lists, detail, downloads and final picks, end to end.

Over 400 lines on purpose: one team's submission journey through the JSON API, in the
order a team meets it, with the upload helpers at the top shared by every test. The
pages have their own module (test_submission_pages), the pure upload checks theirs
(tests/unit/test_validate_source).
"""

import asyncio
import codecs
import hashlib
from datetime import UTC, datetime

import psycopg
import pytest

from portal.core.db import psycopg_conninfo
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.competition import set_clock
from tests.fixtures.factories import browser_login


def py_file(body: str = "print('hello')\n", name: str = "solution.py") -> dict:
    return {"file": (name, body.encode() if isinstance(body, str) else body, "text/x-python")}


def distinct_source(number: int) -> str:
    return f"# solution {number}\nprint({number})\n"


def count_rows(services, sql: str, *params) -> int:
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        return conn.execute(sql, params).fetchone()[0]


async def test_upload_answers_201_with_metadata_and_quota(client, teams):
    alpha = await teams.create()
    source = "def solve():\n    return 42\n"
    response = await client.post(
        "/api/v1/submissions", files=py_file(source), data={"note": "first try"}, headers=alpha.auth
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert body["size_bytes"] == len(source)
    assert body["filename"] == "solution.py" and body["note"] == "first try"
    assert body["status"] == "not evaluated" and body["is_final"] is False
    assert body["quota"]["used"] == 1 and body["quota"]["limit"] == 5
    assert body["quota"]["remaining"] == 4
    resets_at = datetime.fromisoformat(body["quota"]["resets_at"])
    assert (resets_at.hour, resets_at.minute, resets_at.second) == (0, 0, 0)


@pytest.mark.parametrize(
    ("filename", "content", "status", "code", "phrase"),
    [
        ("solution.txt", b"print(1)\n", 422, "not_python_file", "must end in .py"),
        ("solution.py", b"", 422, "empty_file", "The file is empty"),
        ("solution.py", b"print(1)\x00\n", 422, "nul_byte", "NUL byte"),
        ("solution.py", b"# caf\xe9\nprint(1)\n", 422, "not_utf8", "not valid UTF-8 (line 1"),
        ("solution.py", b"x = 1\ndef broken(:\n    pass\n", 422, "syntax_error", "line 2"),
        # A byte-order mark is not content: with nothing after it the file is empty.
        ("solution.py", codecs.BOM_UTF8, 422, "empty_file", "The file is empty"),
        ("solution.py", codecs.BOM_UTF8 + b"x = 1\ndef (:\n", 422, "syntax_error", "line 2"),
    ],
)
async def test_each_upload_rule_has_its_own_message_and_costs_nothing(
    client, teams, services, filename, content, status, code, phrase
):
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/submissions", files=py_file(content, filename), headers=alpha.auth
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and phrase in error["message"]
    assert count_rows(services, "SELECT count(*) FROM submission") == 0
    assert count_rows(services, "SELECT coalesce(sum(used), 0) FROM submission_quota") == 0
    refused = count_rows(
        services,
        "SELECT count(*) FROM audit_log WHERE action = 'submission.upload_refused' "
        "AND details->>'reason' = %s",
        code,
    )
    assert refused == 1


async def test_a_utf8_file_with_a_byte_order_mark_is_accepted_and_kept_as_uploaded(client, teams):
    """Editors on Windows save UTF-8 with a BOM; Python runs such a file as it is."""
    alpha = await teams.create()
    content = codecs.BOM_UTF8 + "print('héllo')\n".encode()
    response = await client.post("/api/v1/submissions", files=py_file(content), headers=alpha.auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["sha256"] == hashlib.sha256(content).hexdigest()
    assert created["size_bytes"] == len(content)
    download = await client.get(f"/api/v1/submissions/{created['id']}/file", headers=alpha.auth)
    assert download.content == content


async def test_syntax_error_names_line_and_column(client, teams):
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/submissions", files=py_file("a = (\n\nb = 2\n"), headers=alpha.auth
    )
    details = response.json()["error"]["details"]
    assert details["line"] >= 1 and details["message"]


@pytest.fixture
async def small_limit_app(settings):
    application = create_app(settings.model_copy(update={"max_upload_bytes": 2048}))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_file_over_the_limit_is_413(small_limit_app, teams):
    alpha = await teams.create()
    async with make_client(small_limit_app) as client:
        just_fits = "#" * (2048 - 1) + "\n"
        ok = await client.post("/api/v1/submissions", files=py_file(just_fits), headers=alpha.auth)
        assert ok.status_code == 201, ok.text
        too_big = "#" * 2048 + "\n"
        response = await client.post(
            "/api/v1/submissions", files=py_file(too_big), headers=alpha.auth
        )
    assert response.status_code == 413
    assert "2 KiB limit" in response.json()["error"]["message"]


async def test_an_oversized_streamed_body_is_refused_before_it_is_read(small_limit_app, teams):
    alpha = await teams.create()
    sent = 0
    boundary = "portalboundary"

    async def endless_upload():
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.py"\r\nContent-Type: text/x-python\r\n\r\n'
        ).encode()
        sent += len(head)
        yield head
        for _ in range(1000):  # 64 MiB if nobody stops us
            chunk = b"#" * 65536
            sent += len(chunk)
            yield chunk

    async with make_client(small_limit_app) as client:
        response = await client.post(
            "/api/v1/submissions",
            content=endless_upload(),
            headers={**alpha.auth, "content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 413
    assert sent <= 2 * 65536 + 1024, f"the server kept reading: {sent} bytes"


async def test_a_declared_oversized_body_is_refused_without_reading(small_limit_app, teams):
    alpha = await teams.create()
    async with make_client(small_limit_app) as client:
        response = await client.post(
            "/api/v1/submissions",
            files=py_file("#" * 100_000),
            headers=alpha.auth,
        )
    assert response.status_code == 413


async def test_the_uploaded_name_is_display_text_only(client, teams, settings):
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/submissions", files=py_file("x = 1\n", "../../evil.py"), headers=alpha.auth
    )
    assert response.status_code == 201
    assert response.json()["filename"] == "evil.py"
    stored = [p for p in settings.local_storage_path.rglob("*") if p.is_file()]
    assert [p.name for p in stored if not p.name.startswith(".")] == [response.json()["sha256"]]
    assert not (settings.local_storage_path.parent / "evil.py").exists()


async def test_reuploading_an_identical_file_is_409_and_costs_no_quota(client, teams):
    alpha = await teams.create()
    first = await client.post(
        "/api/v1/submissions", files=py_file("x = 1\n", "a.py"), headers=alpha.auth
    )
    again = await client.post(
        "/api/v1/submissions", files=py_file("x = 1\n", "b.py"), headers=alpha.auth
    )
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate_submission"
    assert error["details"]["submission_id"] == first.json()["id"]
    assert f"#{first.json()['id']}" in error["message"]
    quota = await client.get("/api/v1/submissions/quota", headers=alpha.auth)
    assert quota.json()["used"] == 1
    # Another team may submit the very same file.
    beta = await teams.create()
    other = await client.post("/api/v1/submissions", files=py_file("x = 1\n"), headers=beta.auth)
    assert other.status_code == 201


async def test_storage_down_is_503_with_no_quota_used_and_no_row(
    settings, teams, services, tmp_path
):
    blocked = tmp_path / "storage-is-a-file"
    blocked.write_text("not a directory")
    app = create_app(settings.model_copy(update={"storage_local_dir": blocked}))
    alpha = await teams.create()
    async with app.router.lifespan_context(app), make_client(app) as client:
        response = await client.post("/api/v1/submissions", files=py_file(), headers=alpha.auth)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert "no quota was used" in response.json()["error"]["message"]
    assert count_rows(services, "SELECT count(*) FROM submission") == 0
    assert count_rows(services, "SELECT coalesce(sum(used), 0) FROM submission_quota") == 0


async def test_twenty_parallel_uploads_with_five_left_accept_exactly_five(app, teams, services):
    alpha = await teams.create()
    async with make_client(app) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
                )
                for n in range(20)
            )
        )
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 5 and codes.count(429) == 15, codes
    for refused in (r for r in responses if r.status_code == 429):
        error = refused.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert error["details"]["resets_at"] and int(refused.headers["retry-after"]) > 0
        assert "resets at" in error["message"]
    assert count_rows(services, "SELECT count(*) FROM submission WHERE team_id = %s", alpha.id) == 5
    assert (
        count_rows(services, "SELECT used FROM submission_quota WHERE team_id = %s", alpha.id) == 5
    )


@pytest.mark.parametrize("uploads_left", [5, 1])
async def test_twenty_parallel_uploads_of_one_file_accept_it_once_and_refuse_the_rest_as_duplicates(
    app, teams, services, uploads_left
):
    alpha = await teams.create()
    async with make_client(app) as client:
        for n in range(5 - uploads_left):
            earlier = py_file(distinct_source(n))
            assert (
                await client.post("/api/v1/submissions", files=earlier, headers=alpha.auth)
            ).status_code == 201
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/submissions", files=py_file("x = 1\n"), headers=alpha.auth)
                for _ in range(20)
            )
        )
    codes = [r.status_code for r in responses]
    assert sorted(codes) == [201] + [409] * 19, codes
    [accepted] = [r.json() for r in responses if r.status_code == 201]
    for refused in (r for r in responses if r.status_code == 409):
        error = refused.json()["error"]
        assert error["code"] == "duplicate_submission"
        assert error["details"]["submission_id"] == accepted["id"]
        assert f"identical to your submission #{accepted['id']}" in error["message"]
    assert (
        count_rows(services, "SELECT count(*) FROM submission WHERE team_id = %s", alpha.id)
        == 6 - uploads_left
    )
    assert (
        count_rows(services, "SELECT used FROM submission_quota WHERE team_id = %s", alpha.id)
        == 6 - uploads_left
    )


async def test_admin_quota_override_changes_the_limit(client, teams):
    admin = await teams.admin()
    alpha = await teams.create()
    await client.patch(
        f"/api/v1/teams/{alpha.id}", json={"daily_submission_limit": 2}, headers=admin.auth
    )
    codes = []
    for n in range(3):
        response = await client.post(
            "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
        )
        codes.append(response.status_code)
    assert codes == [201, 201, 429]


async def test_quota_resets_at_midnight_in_the_competition_timezone(settings, teams):
    # November: Paris is UTC+1, so its midnight is 23:00 UTC.
    paris = create_app(
        settings.model_copy(update={"timezone": "Europe/Paris", "daily_submissions": 2})
    )
    alpha = await teams.create()
    async with paris.router.lifespan_context(paris), make_client(paris) as client:
        now = datetime(2026, 11, 26, 22, 59, 30, tzinfo=UTC)
        # The portal's clock reads `now`, so assigning it later moves the portal's time.
        set_clock(paris, lambda: now)
        for n in range(2):
            ok = await client.post(
                "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
            )
            assert ok.status_code == 201
        refused = await client.post(
            "/api/v1/submissions", files=py_file(distinct_source(9)), headers=alpha.auth
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["details"]["resets_at"] == "2026-11-26T23:00:00+00:00"
        assert refused.headers["retry-after"] == "30"

        now = datetime(2026, 11, 26, 23, 0, 5, tzinfo=UTC)
        after_midnight = await client.post(
            "/api/v1/submissions", files=py_file(distinct_source(9)), headers=alpha.auth
        )
        assert after_midnight.status_code == 201
        assert after_midnight.json()["quota"]["used"] == 1
        assert after_midnight.json()["quota"]["resets_at"] == "2026-11-27T23:00:00Z"


async def test_my_submissions_are_listed_newest_first_and_paginated(client, teams):
    alpha = await teams.create()
    beta = await teams.create()
    ids = []
    for n in range(3):
        r = await client.post(
            "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
        )
        ids.append(r.json()["id"])
    await client.post("/api/v1/submissions", files=py_file("y = 2\n"), headers=beta.auth)
    page = (await client.get("/api/v1/submissions?size=2", headers=alpha.auth)).json()
    assert page["total"] == 3 and [item["id"] for item in page["items"]] == ids[::-1][:2]
    second = (await client.get("/api/v1/submissions?size=2&page=2", headers=alpha.auth)).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]


async def test_detail_and_download_serve_the_file_as_plain_text(client, teams):
    alpha = await teams.create()
    source = "print('<script>alert(1)</script>')\n"
    created = (
        await client.post("/api/v1/submissions", files=py_file(source), headers=alpha.auth)
    ).json()
    detail = await client.get(f"/api/v1/submissions/{created['id']}", headers=alpha.auth)
    assert detail.json()["results"] == [] and detail.json()["sha256"] == created["sha256"]
    download = await client.get(f"/api/v1/submissions/{created['id']}/file", headers=alpha.auth)
    assert download.status_code == 200
    assert download.content == source.encode()
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_another_teams_submission_is_404_everywhere(client, teams):
    alpha = await teams.create()
    beta = await teams.create()
    created = (await client.post("/api/v1/submissions", files=py_file(), headers=alpha.auth)).json()
    sid = created["id"]
    for method, url in (
        ("GET", f"/api/v1/submissions/{sid}"),
        ("GET", f"/api/v1/submissions/{sid}/file"),
        ("PUT", f"/api/v1/submissions/{sid}/final"),
        ("DELETE", f"/api/v1/submissions/{sid}/final"),
    ):
        response = await client.request(method, url, headers=beta.auth)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["message"] == f"You have no submission #{sid}."
    csrf = await browser_login(client, beta)
    assert (await client.get(f"/submissions/{sid}")).status_code == 404
    toggle = await client.post(
        f"/submissions/{sid}/final", data={"final": "true", "csrf_token": csrf}
    )
    assert toggle.status_code == 404
    missing = await client.get("/api/v1/submissions/999999", headers=alpha.auth)
    assert missing.status_code == 404


async def test_final_picks_are_idempotent_and_limited(client, teams):
    alpha = await teams.create()
    ids = [
        (
            await client.post(
                "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
            )
        ).json()["id"]
        for n in range(3)
    ]
    first = await client.put(f"/api/v1/submissions/{ids[0]}/final", headers=alpha.auth)
    assert first.json() == {
        "submission_id": ids[0],
        "is_final": True,
        "picks_used": 1,
        "picks_limit": 2,
    }
    again = await client.put(f"/api/v1/submissions/{ids[0]}/final", headers=alpha.auth)
    assert again.status_code == 200 and again.json()["picks_used"] == 1
    await client.put(f"/api/v1/submissions/{ids[1]}/final", headers=alpha.auth)
    third = await client.put(f"/api/v1/submissions/{ids[2]}/final", headers=alpha.auth)
    assert third.status_code == 409
    assert "at most 2 final submissions" in third.json()["error"]["message"]
    unpick = await client.delete(f"/api/v1/submissions/{ids[0]}/final", headers=alpha.auth)
    assert unpick.json()["is_final"] is False and unpick.json()["picks_used"] == 1
    unpick_again = await client.delete(f"/api/v1/submissions/{ids[0]}/final", headers=alpha.auth)
    assert unpick_again.status_code == 200 and unpick_again.json()["picks_used"] == 1
    now_allowed = await client.put(f"/api/v1/submissions/{ids[2]}/final", headers=alpha.auth)
    assert now_allowed.status_code == 200


async def test_parallel_picks_never_exceed_the_limit(app, teams, services):
    alpha = await teams.create()
    async with make_client(app) as client:
        ids = [
            (
                await client.post(
                    "/api/v1/submissions", files=py_file(distinct_source(n)), headers=alpha.auth
                )
            ).json()["id"]
            for n in range(5)
        ]
        responses = await asyncio.gather(
            *(client.put(f"/api/v1/submissions/{sid}/final", headers=alpha.auth) for sid in ids * 2)
        )
    codes = [r.status_code for r in responses]
    assert codes.count(409) >= 6, codes
    assert count_rows(services, "SELECT count(*) FROM submission WHERE is_final") == 2


async def test_uploads_picks_and_refusals_are_audited(client, teams, services):
    alpha = await teams.create()
    sid = (await client.post("/api/v1/submissions", files=py_file(), headers=alpha.auth)).json()[
        "id"
    ]
    await client.post("/api/v1/submissions", files=py_file(), headers=alpha.auth)  # duplicate
    await client.put(f"/api/v1/submissions/{sid}/final", headers=alpha.auth)
    await client.delete(f"/api/v1/submissions/{sid}/final", headers=alpha.auth)
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        rows = conn.execute(
            "SELECT action, details->>'reason' FROM audit_log WHERE actor_team_id = %s ORDER BY id",
            (alpha.id,),
        ).fetchall()
    assert rows == [
        ("submission.upload", None),
        ("submission.upload_refused", "duplicate_submission"),
        ("submission.pick", None),
        ("submission.unpick", None),
    ]
