"""Security headers on every page, framing rules, cookie flags, and nothing served as HTML
that a team uploaded or printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login
from tests.fixtures.routes import api_routes

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def page_paths(app) -> list[str]:
    """Every GET page without path parameters (HTML routes are left out of the schema)."""
    return sorted(
        route.path
        for route in api_routes(app)
        if isinstance(route, APIRoute)
        and "GET" in route.methods
        and not route.include_in_schema
        and "{" not in route.path
    )


def assert_locked_down(response, path: str) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]+)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, path
    assert "frame-ancestors 'none'" in csp, path
    assert headers["x-frame-options"] == "DENY", path
    assert headers["x-content-type-options"] == "nosniff", path
    assert headers["referrer-policy"] == "same-origin", path


async def test_every_page_carries_the_security_headers(app, client, teams):
    admin = await teams.admin()
    await browser_login(client, admin)
    paths = page_paths(app)
    assert {"/login", "/dashboard", "/usage", "/admin/usage", "/leaderboard"} <= set(paths)
    for path in paths:
        response = await client.get(path)
        assert response.status_code < 500, path
        assert_locked_down(response, path)


def test_templates_have_no_inline_script_or_event_handlers():
    """The CSP forbids them; this keeps a template from quietly breaking under it."""
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            # A JSON data block is never run (the reveal page's data): not a script.
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "javascript:" not in text, template.name
        # Autoescaping is what keeps a team's note or run log from becoming markup.
        assert not re.search(r"\|\s*safe\b", text), template.name


async def test_projector_can_be_framed_only_where_a_setting_allows(settings, client):
    default = await client.get("/leaderboard/projector")
    assert_locked_down(default, "/leaderboard/projector")

    allowed = create_app(
        settings.model_copy(update={"projector_frame_ancestors": "https://signage.example.org"})
    )
    async with allowed.router.lifespan_context(allowed), make_client(allowed) as http:
        projector = await http.get("/leaderboard/projector")
        csp = projector.headers["content-security-policy"]
        assert "frame-ancestors https://signage.example.org" in csp
        assert "x-frame-options" not in projector.headers
        assert "script-src 'self';" in csp  # only framing changed
        # Every other view still refuses to be framed.
        assert_locked_down(await http.get("/leaderboard"), "/leaderboard")


@pytest.mark.parametrize(
    ("base_url", "secure"), [("http://testserver", False), ("https://portal.example.org", True)]
)
async def test_session_cookie_flags(settings, teams_for, base_url, secure):
    app = create_app(settings.model_copy(update={"base_url": base_url}))
    async with app.router.lifespan_context(app), make_client(app) as http:
        team = await teams_for(app).create()
        page = await http.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        login = await http.post(
            "/login", data={"email": team.email, "api_token": team.token, "csrf_token": csrf}
        )
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/" in cookie
        assert ("Secure" in cookie) is secure


async def test_uploaded_code_and_notes_are_never_served_as_html(client, teams):
    team = await teams.create()
    payload = b"print('hi')\n# </script><script>alert(document.cookie)</script>\n"
    created = await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": ("x.py", payload, "text/html")},
        data={"note": "<img src=x onerror=alert(1)>"},
    )
    assert created.status_code == 201, created.text
    submission_id = created.json()["id"]

    download = await client.get(f"/api/v1/submissions/{submission_id}/file", headers=team.auth)
    assert download.content == payload
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"

    await browser_login(client, team)
    page = await client.get(f"/submissions/{submission_id}")
    assert "<img src=x onerror" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
