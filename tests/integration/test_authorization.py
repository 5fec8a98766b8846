"""Role and CSRF rules, checked on every route the app has (a new route cannot be missed)."""

import re

import pytest

from portal.auth.deps import page_admin, require_admin, verify_csrf
from tests.fixtures.factories import browser_login
from tests.fixtures.routes import api_routes

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# JSON-only login needs no CSRF token (see test_json_login_refuses_a_form_encoded_body).
CSRF_EXEMPT = {("POST", "/api/v1/auth/login")}
# The LLM gateway takes bearer tokens only and ignores cookies, so a page elsewhere cannot
# make a browser spend a team's calls (see test_gateway_ignores_a_logged_in_browser).
TOKEN_ONLY_PREFIX = "/llm/"


def _dependency_calls(dependant) -> set:
    calls = {dependant.call}
    for sub in dependant.dependencies:
        calls |= _dependency_calls(sub)
    return calls


def _routes(app):
    for route in api_routes(app):
        for method in sorted(route.methods):
            yield method, route, _dependency_calls(route.dependant)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def admin_routes(app):
    return [(m, r) for m, r, calls in _routes(app) if require_admin in calls or page_admin in calls]


async def test_route_table_has_the_admin_routes_we_expect(app):
    paths = {(method, route.path) for method, route in admin_routes(app)}
    assert ("GET", "/api/v1/teams") in paths
    assert ("POST", "/api/v1/teams") in paths
    assert ("GET", "/api/v1/audit") in paths
    assert ("GET", "/admin/teams") in paths
    assert ("GET", "/admin/audit") in paths


async def test_participant_is_refused_on_every_admin_route(app, client, teams):
    participant = await teams.create()
    csrf = await browser_login(client, participant)
    checked = 0
    for method, route in admin_routes(app):
        url = _concrete(route.path)
        if route.path.startswith("/api/"):
            response = await client.request(method, url, headers=participant.auth, json={})
            assert response.status_code == 403, (method, route.path, response.text)
            assert response.json()["error"]["code"] == "admin_required"
        else:
            response = await client.request(method, url, data={"csrf_token": csrf})
            assert response.status_code == 303, (method, route.path)
            assert response.headers["location"].startswith("/login?next=")
        checked += 1
    assert checked >= 8


async def test_visitor_is_refused_on_every_admin_route(app, client):
    for method, route in admin_routes(app):
        response = await client.request(method, _concrete(route.path))
        if route.path.startswith("/api/"):
            assert response.status_code == 401, (method, route.path)
        else:
            assert response.status_code == 303, (method, route.path)
            assert response.headers["location"].startswith("/login")


def state_changing_routes(app):
    return [
        (method, route)
        for method, route, calls in _routes(app)
        if method in UNSAFE
        and (method, route.path) not in CSRF_EXEMPT
        and not route.path.startswith(TOKEN_ONLY_PREFIX)
    ]


@pytest.mark.parametrize("token_source", ["missing", "wrong"])
async def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    app, client, teams, token_source
):
    admin = await teams.admin()
    await browser_login(client, admin)
    routes = state_changing_routes(app)
    assert len(routes) >= 8
    for method, route in routes:
        url = _concrete(route.path)
        data = {} if token_source == "missing" else {"csrf_token": "forged"}
        response = await client.request(method, url, data=data)
        assert response.status_code == 403, (method, route.path, response.status_code)
        if route.path.startswith("/api/"):
            assert response.json()["error"]["code"] == "csrf_failed"
        header_response = await client.request(
            method, url, headers={"X-CSRF-Token": "forged"}, json={}
        )
        assert header_response.status_code == 403, (method, route.path)
    # Still logged in: refusals did not disturb the session.
    assert (await client.get("/api/v1/teams/me")).status_code == 200


async def test_csrf_checks_are_wired_on_every_state_changing_route(app):
    """Either the auth dependency (cookie sessions) or an explicit check guards each route."""
    from portal.auth.deps import optional_team

    for method, route, calls in _routes(app):
        if (method, route) in state_changing_routes(app):
            source = route.endpoint.__code__.co_names
            assert optional_team in calls or "verify_csrf" in source, (method, route.path)
    assert verify_csrf  # imported for the name check above


async def test_gateway_ignores_a_logged_in_browser(app, client, teams):
    """Token-only routes: a session cookie (with or without CSRF token) opens nothing."""
    participant = await teams.create()
    csrf = await browser_login(client, participant)
    gateway_routes = [
        (method, route)
        for method, route, _ in _routes(app)
        if route.path.startswith(TOKEN_ONLY_PREFIX)
    ]
    assert len(gateway_routes) == 2
    for method, route in gateway_routes:
        response = await client.request(
            method,
            route.path,
            headers={"X-CSRF-Token": csrf},
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 401, (method, route.path)
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_header_csrf_token_works_like_the_form_field(app, client, teams):
    admin = await teams.admin()
    target = await teams.create()
    csrf = await browser_login(client, admin)
    response = await client.patch(
        f"/api/v1/teams/{target.id}", json={"is_active": False}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200
    response = await client.post(
        f"/admin/teams/{target.id}/active", data={"active": "true", "csrf_token": csrf}
    )
    assert response.status_code == 303


# Path parameters naming something a team owns; every other id is an admin's to use.
TEAM_OWNED_IDS = {"submission_id"}
# Public by design: a team's history on the public leaderboard.
PUBLIC_ID_ROUTES = {("GET", "/leaderboard/teams/{team_id}")}


def _path_params(route) -> set[str]:
    return set(re.findall(r"\{([^}:]+)", route.path))


async def test_every_id_in_a_path_is_team_owned_or_admin_only(app):
    """A new route with an id must be classified, so the 404 matrix below covers it."""
    admin_paths = {route.path for _, route in admin_routes(app)}
    for method, route, _ in _routes(app):
        params = _path_params(route) - {"action"}
        if params and not params <= TEAM_OWNED_IDS and (method, route.path) not in PUBLIC_ID_ROUTES:
            assert route.path in admin_paths, (method, route.path, params)


async def test_every_route_with_a_team_owned_id_is_404_to_another_team(app, client, teams):
    owner, other = await teams.create(), await teams.create()
    created = await client.post(
        "/api/v1/submissions",
        headers=owner.auth,
        files={"file": ("a.py", b"print(1)\n", "text/x-python")},
    )
    submission_id = created.json()["id"]
    csrf = await browser_login(client, other)
    checked = 0
    for method, route, _ in _routes(app):
        if not _path_params(route) & TEAM_OWNED_IDS:
            continue
        url = route.path.replace("{submission_id}", str(submission_id))
        if route.path.startswith("/api/"):
            response = await client.request(method, url, headers=other.auth)
        else:
            response = await client.request(method, url, data={"csrf_token": csrf, "final": "true"})
        assert response.status_code == 404, (method, route.path, response.status_code)
        checked += 1
    assert checked >= 6
    # The owner still sees it: the 404s were about ownership, not a broken route.
    assert (
        await client.get(f"/api/v1/submissions/{submission_id}", headers=owner.auth)
    ).status_code == 200
