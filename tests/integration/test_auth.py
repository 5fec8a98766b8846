"""Login, sessions, tokens and the throttle, through the real app, PostgreSQL and Redis."""

import hashlib

import psycopg

from portal.core.db import psycopg_conninfo
from portal.core.security import SESSION_COOKIE
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login, csrf_from_login_page


async def test_login_page_has_labelled_inputs_and_button(client):
    page = await client.get("/login")
    assert page.status_code == 200
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="api_token">API token</label>' in page.text
    assert ">Log in</button>" in page.text


async def test_form_login_sets_a_safe_session_cookie_and_opens_the_dashboard(client, teams):
    alpha = await teams.create(name="Alpha")
    csrf = await csrf_from_login_page(client)
    response = await client.post(
        "/login", data={"email": alpha.email, "api_token": alpha.token, "csrf_token": csrf}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "Alpha" in dashboard.text


async def test_login_gives_a_fresh_session(client, teams):
    alpha = await teams.create()
    await client.get("/login")
    anonymous_cookie = client.cookies[SESSION_COOKIE]
    await browser_login(client, alpha)
    assert client.cookies[SESSION_COOKIE] != anonymous_cookie


async def test_cookie_is_secure_when_served_over_https(app, teams, settings):
    app.state.settings = settings.model_copy(update={"base_url": "https://portal.example.org"})
    alpha = await teams.create()
    async with make_client(app) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
    assert "Secure" in response.headers["set-cookie"]


async def test_wrong_token_is_refused_and_audited(client, teams):
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/auth/login", json={"email": alpha.email, "api_token": "pt_wrong"}
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "invalid_credentials"
    assert body["request_id"] == response.headers["x-request-id"]

    admin = await teams.admin()
    audit = await client.get("/api/v1/audit?action=auth", headers=admin.auth)
    actions = [(e["action"], e["target_id"]) for e in audit.json()["items"]]
    assert ("auth.login_failed", alpha.email) in actions


async def test_successful_login_is_audited_with_ip_and_request_id(client, teams):
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
    )
    assert response.status_code == 200
    admin = await teams.admin()
    entries = (await client.get("/api/v1/audit?action=auth.login", headers=admin.auth)).json()
    entry = entries["items"][0]
    assert entry["action"] == "auth.login"
    assert entry["actor_team_id"] == alpha.id
    assert entry["ip"] == "127.0.0.1"
    assert entry["request_id"] == response.headers["x-request-id"]


async def test_a_token_of_another_team_does_not_log_in(client, teams):
    alpha = await teams.create()
    beta = await teams.create()
    response = await client.post(
        "/api/v1/auth/login", json={"email": alpha.email, "api_token": beta.token}
    )
    assert response.status_code == 401


async def test_bearer_and_x_api_token_headers_both_authenticate(client, teams):
    alpha = await teams.create(name="Alpha")
    for headers in ({"Authorization": f"Bearer {alpha.token}"}, {"X-API-Token": alpha.token}):
        response = await client.get("/api/v1/teams/me", headers=headers)
        assert response.status_code == 200
        assert response.json()["name"] == "Alpha"
    response = await client.get("/api/v1/teams/me", headers={"Authorization": "Bearer pt_nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_token_is_stored_only_as_a_sha256_digest(services, teams):
    alpha = await teams.create()
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        (row_text, token_hash, prefix) = conn.execute(
            "SELECT team::text, token_hash, token_prefix FROM team WHERE id = %s", (alpha.id,)
        ).fetchone()
    assert alpha.token not in row_text
    assert token_hash == hashlib.sha256(alpha.token.encode()).hexdigest()
    assert alpha.token.startswith(prefix) and len(prefix) < 16


async def test_deactivation_ends_sessions_on_the_next_request(app, teams):
    alpha = await teams.create()
    admin = await teams.admin()
    async with make_client(app) as browser, make_client(app) as api:
        await browser_login(browser, alpha)
        assert (await browser.get("/api/v1/teams/me")).status_code == 200
        response = await api.patch(
            f"/api/v1/teams/{alpha.id}", json={"is_active": False}, headers=admin.auth
        )
        assert response.status_code == 200 and response.json()["is_active"] is False
        assert (await browser.get("/api/v1/teams/me")).status_code == 401
        page = await browser.get("/dashboard")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        # The token stops working too, and the team cannot log in again.
        assert (await api.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 401
        again = await api.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
        assert again.status_code == 401


async def test_token_rotation_ends_sessions_and_the_old_token(app, teams):
    alpha = await teams.create()
    admin = await teams.admin()
    async with make_client(app) as browser, make_client(app) as api:
        await browser_login(browser, alpha)
        rotated = await api.post(f"/api/v1/teams/{alpha.id}/rotate-token", headers=admin.auth)
        assert rotated.status_code == 200
        new_token = rotated.json()["api_token"]
        assert new_token != alpha.token
        assert (await browser.get("/api/v1/teams/me")).status_code == 401
        assert (await api.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 401
        headers = {"Authorization": f"Bearer {new_token}"}
        assert (await api.get("/api/v1/teams/me", headers=headers)).status_code == 200


async def test_logout_ends_that_session_even_if_the_cookie_is_replayed(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    stolen_cookie = client.cookies[SESSION_COOKIE]
    response = await client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    client.cookies.set(SESSION_COOKIE, stolen_cookie)
    assert (await client.get("/api/v1/teams/me")).status_code == 401


async def test_eleventh_failed_login_in_a_minute_is_throttled_per_ip(app, teams):
    alpha = await teams.create()
    async with make_client(app, ip="10.1.1.1") as client:
        for attempt in range(10):
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": f"nobody{attempt}@example.org", "api_token": "pt_bad"},
            )
            assert response.status_code == 401, attempt
        throttled = await client.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        assert throttled.json()["error"]["code"] == "login_throttled"
    # Another address is not affected by this one's failures.
    async with make_client(app, ip="10.1.1.2") as other:
        response = await other.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
        assert response.status_code == 200


async def test_failed_logins_are_throttled_per_email_across_addresses(app, teams):
    alpha = await teams.create()
    for attempt in range(10):
        async with make_client(app, ip=f"10.2.0.{attempt + 1}") as client:
            response = await client.post(
                "/api/v1/auth/login", json={"email": alpha.email, "api_token": "pt_guess"}
            )
            assert response.status_code == 401
    async with make_client(app, ip="10.2.1.1") as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
        assert response.status_code == 429
        assert "Retry-After" in response.headers or "retry-after" in response.headers


async def test_throttled_form_login_shows_a_readable_message(app, teams):
    alpha = await teams.create()
    async with make_client(app, ip="10.3.0.1") as client:
        csrf = await csrf_from_login_page(client)
        for _ in range(10):
            await client.post(
                "/login", data={"email": alpha.email, "api_token": "pt_x", "csrf_token": csrf}
            )
        page = await client.post(
            "/login", data={"email": alpha.email, "api_token": alpha.token, "csrf_token": csrf}
        )
        assert page.status_code == 429
        assert "Too many failed logins" in page.text
        assert page.headers["content-type"].startswith("text/html")


async def test_login_form_without_csrf_token_is_refused(client, teams):
    alpha = await teams.create()
    await client.get("/login")
    response = await client.post("/login", data={"email": alpha.email, "api_token": alpha.token})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_json_login_refuses_a_form_encoded_body(client, teams):
    # A cross-site form cannot send application/json, so JSON-only login needs no CSRF token.
    alpha = await teams.create()
    response = await client.post(
        "/api/v1/auth/login",
        content=f'{{"email": "{alpha.email}", "api_token": "{alpha.token}"}}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 422


async def test_next_parameter_cannot_redirect_off_site(client, teams):
    alpha = await teams.create()
    csrf = await csrf_from_login_page(client)
    response = await client.post(
        "/login",
        data={
            "email": alpha.email,
            "api_token": alpha.token,
            "csrf_token": csrf,
            "next": "//evil.example.org/",
        },
    )
    assert response.headers["location"] == "/dashboard"
