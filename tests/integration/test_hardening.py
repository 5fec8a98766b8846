"""Races and failure modes found in review: each must stay fixed."""

import asyncio

import psycopg

from portal.core.db import psycopg_conninfo
from portal.core.embedded import EmbeddedRedis
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login, csrf_from_login_page


async def test_parallel_bad_logins_cannot_slip_past_the_throttle(app, teams):
    alpha = await teams.create()
    async with make_client(app, ip="10.9.9.9") as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login", json={"email": alpha.email, "api_token": f"pt_guess{n}"}
                )
                for n in range(30)
            )
        )
    codes = sorted(response.status_code for response in responses)
    assert codes.count(401) == 10 and codes.count(429) == 20, codes


async def test_successful_logins_do_not_count_as_failures(app, teams):
    alpha = await teams.create()
    async with make_client(app, ip="10.9.9.8") as client:
        for _ in range(15):
            response = await client.post(
                "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
            )
            assert response.status_code == 200


async def test_concurrent_rotations_both_end_sessions(app, teams, services):
    alpha = await teams.create()
    admin = await teams.admin()
    async with make_client(app) as client:
        first, second = await asyncio.gather(
            client.post(f"/api/v1/teams/{alpha.id}/rotate-token", headers=admin.auth),
            client.post("/api/v1/teams/me/rotate-token", headers=alpha.auth),
        )
    assert {first.status_code, second.status_code} <= {200, 401}
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        (epoch,) = conn.execute(
            "SELECT session_epoch FROM team WHERE id = %s", (alpha.id,)
        ).fetchone()
    assert epoch == [first.status_code, second.status_code].count(200)


async def test_pages_answer_503_not_500_while_redis_is_down(settings, tmp_path, teams):
    own_redis = EmbeddedRedis(tmp_path / "redis")
    app = create_app(settings.model_copy(update={"redis_url": own_redis.start()}))
    alpha = await teams.create()
    try:
        async with app.router.lifespan_context(app), make_client(app) as client:
            await browser_login(client, alpha)
            own_redis.stop()
            page = await client.get("/dashboard")
            assert page.status_code == 503
            assert "cannot reach its database or cache" in page.text
            api = await client.get("/api/v1/teams/me")
            assert api.status_code == 503
            assert api.json()["error"]["code"] == "service_unavailable"
    finally:
        own_redis.stop()


async def test_the_usage_api_answers_503_not_500_while_redis_is_down(settings, tmp_path, teams):
    """A team's usage report shows its budgets in use right now, read from Redis."""
    own_redis = EmbeddedRedis(tmp_path / "redis")
    app = create_app(settings.model_copy(update={"redis_url": own_redis.start()}))
    alpha, admin = await teams.create(), await teams.admin()
    try:
        async with app.router.lifespan_context(app), make_client(app) as client:
            own_redis.stop()
            for path in ("/api/v1/usage", f"/api/v1/usage?team_id={alpha.id}"):
                who = alpha if "team_id" not in path else admin
                api = await client.get(path, headers=who.auth)
                assert api.status_code == 503, (path, api.text)
                assert api.json()["error"]["code"] == "service_unavailable"
                assert api.headers["retry-after"]
            # The gateway's own routes say the same in OpenAI's shape.
            for method, path in (("GET", "/llm/v1/models"), ("POST", "/llm/v1/chat/completions")):
                body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
                answer = await client.request(method, path, json=body, headers=alpha.auth)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.json()["error"]["type"] == "server_error"
    finally:
        own_redis.stop()


async def test_an_unexpected_error_on_a_page_is_a_readable_html_page(app, client):
    async def explode():
        raise RuntimeError("internals")

    app.add_api_route("/explode-page", explode)
    page = await client.get("/explode-page", headers={"Accept": "text/html"})
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text
    assert page.headers["x-request-id"] in page.text


async def test_back_button_history_restore_gets_the_whole_page(client, teams):
    admin = await teams.admin()
    await browser_login(client, admin)
    restore = await client.get(
        "/admin/teams?q=x", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.text


async def test_pages_with_tokens_are_never_cached(client, teams):
    admin = await teams.admin()
    created = await client.post(
        "/api/v1/teams", json={"name": "C", "email": "c@example.org"}, headers=admin.auth
    )
    assert created.headers["cache-control"] == "no-store"
    static = await client.get("/static/app.css")
    assert static.headers.get("cache-control") != "no-store"


async def test_a_token_typed_into_the_email_field_is_not_kept_in_the_audit_log(client, teams):
    alpha = await teams.create()
    admin = await teams.admin()
    await client.post("/api/v1/auth/login", json={"email": alpha.token, "api_token": "x"})
    audit = await client.get("/api/v1/audit?action=auth.login_failed", headers=admin.auth)
    assert alpha.token.lower() not in audit.text.lower()
    assert audit.json()["items"][0]["target_id"].startswith("sha256:")


async def test_the_last_admin_and_oneself_cannot_be_deactivated(app, client, teams):
    admin = await teams.admin()
    itself = await client.patch(
        f"/api/v1/teams/{admin.id}", json={"is_active": False}, headers=admin.auth
    )
    assert itself.status_code == 409 and itself.json()["error"]["code"] == "self_deactivation"
    other_admin = await teams.admin()
    response = await client.patch(
        f"/api/v1/teams/{other_admin.id}", json={"is_active": False}, headers=admin.auth
    )
    assert response.status_code == 200
    # `admin` is now the last active admin: not even the CLI may deactivate it.
    from portal.core.errors import Conflict
    from portal.teams import service

    async with app.state.sessionmaker() as session:
        team = await service.get(session, admin.id)
        try:
            await service.set_active(session, team, False, actor=None)
        except Conflict as exc:
            assert exc.code == "last_admin"
        else:
            raise AssertionError("the last admin was deactivated")
    assert (await client.get("/api/v1/teams/me", headers=admin.auth)).status_code == 200


async def test_readyz_does_not_reveal_connection_details(settings, tmp_path):
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"
    assert "127.0.0.1" not in response.text


async def test_login_next_refuses_paths_a_browser_would_read_as_another_host(client, teams):
    alpha = await teams.create()
    for target in ("/\t/evil.example.org", "/\\evil.example.org", "https://evil.example.org"):
        csrf = await csrf_from_login_page(client)
        response = await client.post(
            "/login",
            data={
                "email": alpha.email,
                "api_token": alpha.token,
                "csrf_token": csrf,
                "next": target,
            },
        )
        assert response.headers["location"] == "/dashboard", target
