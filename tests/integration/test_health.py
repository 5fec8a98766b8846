"""Health, readiness, metrics, request ids, error shape and log hygiene."""

import io
import json
import logging

from portal.core.embedded import EmbeddedRedis
from portal.core.logging import JsonFormatter
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.metrics import METRICS_AUTH


async def test_healthz_answers_without_dependencies(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_checks_database_redis_and_storage(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}


async def test_readyz_names_redis_when_redis_is_down(settings, tmp_path):
    own_redis = EmbeddedRedis(tmp_path / "own-redis")
    redis_url = own_redis.start()
    app = create_app(settings.model_copy(update={"redis_url": redis_url}))
    try:
        async with app.router.lifespan_context(app), make_client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            own_redis.stop()
            response = await client.get("/readyz")
            assert response.status_code == 503
            body = response.json()
            assert body["failed"] == ["redis"]
            assert body["checks"]["database"] == "ok"
            assert "redis" in body["message"]
    finally:
        own_redis.stop()


async def test_readyz_names_storage_when_it_is_not_writable(settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the storage directory should be")
    app = create_app(settings.model_copy(update={"storage_local_dir": blocked}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["storage"]


async def test_metrics_label_requests_by_route_template_not_raw_path(client, teams):
    admin = await teams.admin()
    for team_id in (101, 102, 103):
        await client.get(f"/api/v1/teams/{team_id}", headers=admin.auth)
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'route="/api/v1/teams/{team_id}",status="404"' in text
    assert "/api/v1/teams/101" not in text
    assert "portal_http_request_duration_seconds_bucket" in text


async def test_every_response_carries_a_request_id_and_keeps_a_sane_incoming_one(client):
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-abc-12345"})
    assert echoed.headers["x-request-id"] == "trace-abc-12345"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert hostile.headers["x-request-id"] != "<script>alert(1)</script>"


async def test_unexpected_errors_show_no_stack_trace(app, client):
    async def explode():
        raise RuntimeError("secret internals: /etc/passwd")

    app.add_api_route("/api/v1/explode", explode)
    app.add_api_route("/explode", explode)
    api = await client.get("/api/v1/explode")
    assert api.status_code == 500
    body = api.json()
    assert body["error"]["code"] == "internal_error"
    assert body["request_id"] == api.headers["x-request-id"]
    assert "secret internals" not in api.text and "Traceback" not in api.text
    page = await client.get("/explode", headers={"Accept": "text/html"})
    assert page.status_code == 500
    assert "secret internals" not in page.text and "Traceback" not in page.text


async def test_unknown_routes_answer_404_in_the_error_shape(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    page = await client.get("/nothing-here", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "Not found" in page.text


async def test_logs_are_json_with_request_id_and_team_id_and_never_a_token(client, teams):
    alpha = await teams.create()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    try:
        await client.get(f"/login?token={alpha.token}&next=/dashboard")
        me = await client.get("/api/v1/teams/me", headers=alpha.auth)
        await client.post(
            "/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token}
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    output = stream.getvalue()
    assert alpha.token not in output
    assert alpha.token[10:] not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "portal.access"]
    assert len(access) == 3
    me_line = next(line for line in access if line["route"] == "/api/v1/teams/me")
    assert me_line["request_id"] == me.headers["x-request-id"]
    assert me_line["team_id"] == alpha.id
    assert "token=[REDACTED]" in access[0]["path"]


async def test_security_headers_on_pages(client):
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text  # no inline scripts
    assert '"selfRequestsOnly": true' in response.text
    assert '"allowScriptTags": false' in response.text and '"allowEval": false' in response.text
