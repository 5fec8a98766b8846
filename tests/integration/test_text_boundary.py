"""Text the database cannot store (NUL, lone surrogates), and control characters in
names, are refused at the boundary with a 422 that says what to remove: in the
documented error shape on the API, as a readable page on the pages. Each was a 500."""

from __future__ import annotations

import json

from tests.fixtures.evaluation import upload
from tests.fixtures.factories import browser_login, csrf_from_login_page

NUL = "\x00"
SURROGATE = "\ud800"  # half of a UTF-16 pair: JSON can carry it, UTF-8 cannot
RIGHT_TO_LEFT_OVERRIDE = "\u202e"

SAYS_NUL = "NUL character (U+0000)"
SAYS_SURROGATE = "U+D800"
SAYS_OVERRIDE = "U+202E (RIGHT-TO-LEFT OVERRIDE)"


async def post_json(client, url: str, data: dict, headers: dict | None = None):
    """httpx cannot encode a lone surrogate; json.dumps writes it as \\ud800, as JSON may."""
    headers = {**(headers or {}), "content-type": "application/json"}
    return await client.post(url, content=json.dumps(data), headers=headers)


def assert_api_refusal(response, field: str, says: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert body["request_id"]
    assert f"{field}: " in body["error"]["message"] and says in body["error"]["message"]
    assert any(d["field"] == field and says in d["message"] for d in body["error"]["details"])


def assert_page_refusal(response, says: str) -> None:
    """A page, not JSON: the reason in words, and the request id to quote."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text
    assert "Request id" in response.text


async def started_batch(client, admin, team) -> int:
    """A started batch with the team's submission: the leaderboard searches its board."""
    await upload(client, team, "solution.py", b"print('hello')\n")
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "Round 1", "seeds": [1], "selection": "unevaluated"},
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    started = await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
    assert started.status_code == 200, started.text
    return batch_id


async def test_login_refuses_nul_and_lone_surrogates_before_any_login(client, teams):
    team = await teams.create()
    for email, says in ((f"a{NUL}@example.org", SAYS_NUL), (f"a{SURROGATE}@x.org", SAYS_SURROGATE)):
        response = await post_json(
            client, "/api/v1/auth/login", {"email": email, "api_token": team.token}
        )
        assert_api_refusal(response, "email", says)
    response = await post_json(
        client, "/api/v1/auth/login", {"email": team.email, "api_token": f"pt_{NUL}"}
    )
    assert_api_refusal(response, "api_token", SAYS_NUL)

    csrf = await csrf_from_login_page(client)
    response = await client.post(
        "/login", data={"email": f"a{NUL}@example.org", "api_token": "x", "csrf_token": csrf}
    )
    assert_page_refusal(response, SAYS_NUL)


async def test_leaderboard_search_refuses_nul_once_a_batch_exists(client, teams):
    alpha = await teams.create(name="Alpha")
    await started_batch(client, await teams.admin(), alpha)
    assert (await client.get("/api/v1/leaderboard?q=Al")).status_code == 200
    assert_api_refusal(await client.get("/api/v1/leaderboard?q=Al%00"), "query.q", SAYS_NUL)
    assert_page_refusal(await client.get("/leaderboard?q=Al%00"), SAYS_NUL)


async def test_submission_note_refuses_nul_and_keeps_newlines_and_tabs(client, teams):
    team = await teams.create()
    file = {"file": ("solution.py", b"print('hello')\n", "text/x-python")}
    response = await client.post(
        "/api/v1/submissions", headers=team.auth, files=file, data={"note": f"fast{NUL}"}
    )
    assert_api_refusal(response, "note", SAYS_NUL)

    kept = await client.post(
        "/api/v1/submissions", headers=team.auth, files=file, data={"note": "fast\n\tmaybe"}
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["note"] == "fast\n\tmaybe"

    csrf = await browser_login(client, team)
    response = await client.post(
        "/submissions",
        files={"file": ("other.py", b"print('other')\n", "text/x-python")},
        data={"note": f"x{NUL}", "csrf_token": csrf},
    )
    assert_page_refusal(response, SAYS_NUL)


async def test_team_name_and_email_refuse_nul_surrogates_and_bidi_controls(client, teams):
    admin = await teams.admin()
    for field, value, says in (
        ("name", f"Evil{RIGHT_TO_LEFT_OVERRIDE}gnp.exe", SAYS_OVERRIDE),
        ("name", f"Team{SURROGATE}", SAYS_SURROGATE),
        ("name", f"Team{NUL}", SAYS_NUL),
        ("email", f"team{NUL}@example.org", SAYS_NUL),
        ("email", f"team{RIGHT_TO_LEFT_OVERRIDE}@example.org", SAYS_OVERRIDE),
    ):
        body = {"name": "Fine name", "email": "fine@example.org", field: value}
        response = await post_json(client, "/api/v1/teams", body, admin.auth)
        assert_api_refusal(response, field, says)

    csrf = await browser_login(client, admin)
    for field, value, says in (
        ("name", f"Team{NUL}", SAYS_NUL),
        ("name", f"Evil{RIGHT_TO_LEFT_OVERRIDE}gnp", SAYS_OVERRIDE),
        ("email", f"team{NUL}@example.org", SAYS_NUL),
    ):
        form = {"name": "Fine name", "email": "fine@example.org", field: value, "csrf_token": csrf}
        assert_page_refusal(await client.post("/admin/teams", data=form), says)
    # Nothing half written: no team came out of any of those.
    listed = await client.get("/api/v1/teams", headers=admin.auth)
    assert listed.json()["total"] == 1


async def test_batch_name_refuses_nul_surrogates_and_bidi_controls(client, teams):
    admin = await teams.admin()
    for name, says in (
        (f"Round{NUL}1", SAYS_NUL),
        (f"Round{SURROGATE}", SAYS_SURROGATE),
        (f"Round{RIGHT_TO_LEFT_OVERRIDE}1", SAYS_OVERRIDE),
    ):
        body = {"name": name, "seeds": [1], "selection": "unevaluated"}
        response = await post_json(client, "/api/v1/batches", body, admin.auth)
        assert_api_refusal(response, "name", says)

    csrf = await browser_login(client, admin)
    response = await client.post(
        "/admin/batches",
        data={"name": f"Round{NUL}", "seeds": "1", "selection": "unevaluated", "csrf_token": csrf},
    )
    assert_page_refusal(response, SAYS_NUL)
    assert (await client.get("/api/v1/batches", headers=admin.auth)).json()["total"] == 0


async def test_team_search_and_audit_filter_refuse_nul(client, teams):
    admin = await teams.admin()
    assert_api_refusal(
        await client.get("/api/v1/teams?q=a%00", headers=admin.auth), "query.q", SAYS_NUL
    )
    assert_api_refusal(
        await client.get("/api/v1/audit?action=auth%00", headers=admin.auth),
        "query.action",
        SAYS_NUL,
    )
    await browser_login(client, admin)
    assert_page_refusal(await client.get("/admin/teams?q=a%00"), SAYS_NUL)
    assert_page_refusal(await client.get("/admin/audit?action=auth%00"), SAYS_NUL)


async def test_a_page_address_too_long_to_come_back_to_still_lets_you_log_in(client, teams):
    """A long search sent a visitor to a login form that refused its own `next` field."""
    admin = await teams.admin()
    response = await client.get("/admin/teams?q=" + "x" * 600)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fadmin%2Fteams"
    login_page = await client.get(response.headers["location"])
    # The login form's own fields (the header's language switch has a `next` too).
    login_form = login_page.text.split('action="/login"', 1)[1]
    hidden = {
        name: login_form.split(f'name="{name}" value="', 1)[1].split('"', 1)[0]
        for name in ("csrf_token", "next")
    }
    logged_in = await client.post(
        "/login", data={"email": admin.email, "api_token": admin.token, **hidden}
    )
    assert logged_in.status_code == 303, logged_in.text
    assert logged_in.headers["location"] == "/admin/teams"


async def test_number_fields_refuse_digits_that_are_not_ascii_in_words(client, teams):
    # '²' and '٣' are digits to str.isdigit() but not numbers int() reads: each was a 500.
    admin = await teams.admin()
    team = await teams.create(name="Digits")
    csrf = await browser_login(client, admin)
    for digit in ("²", "٣"):
        audit = await client.get(f"/admin/audit?actor={digit}")
        assert audit.status_code == 200
        assert "Actor must be a team id (a number)." in audit.text

        refused = await client.post(
            f"/admin/teams/{team.id}/quota", data={"daily_limit": digit, "csrf_token": csrf}
        )
        assert refused.status_code == 303, refused.text
        shown = await client.get(refused.headers["location"])
        assert f"{digit}&#39; is not a number of uploads" in shown.text
        for field in ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "max_parallel"):
            refused = await client.post(
                f"/admin/teams/{team.id}/llm-limit", data={field: digit, "csrf_token": csrf}
            )
            assert refused.status_code == 422, refused.text
            assert f"{digit}&#39; is not a number of" in refused.text

        batch = await client.post(
            "/admin/batches",
            data={"name": "Round", "seeds": f"1, {digit}", "csrf_token": csrf},
        )
        assert batch.status_code == 422
        assert f"&#39;{digit}&#39; is not a seed" in batch.text

    # A range is checked before it is built: this one would not fit in memory.
    huge = await client.post(
        "/admin/batches", data={"name": "Huge", "seeds": "0-999999999999", "csrf_token": csrf}
    )
    assert huge.status_code == 422
    assert "is more than 50 seeds" in huge.text
    assert (await client.get("/api/v1/batches", headers=admin.auth)).json()["total"] == 0
