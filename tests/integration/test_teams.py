"""Admin team management through the JSON API and the pages."""

import re

from tests.fixtures.factories import browser_login


async def test_admin_creates_a_team_and_its_token_logs_in(client, teams):
    admin = await teams.admin()
    response = await client.post(
        "/api/v1/teams",
        json={"name": "  New   Team ", "email": "New@Example.org"},
        headers=admin.auth,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "New Team" and body["email"] == "new@example.org"
    assert body["role"] == "participant"
    token = body["api_token"]
    assert token.startswith(body["token_prefix"])
    login = await client.post(
        "/api/v1/auth/login", json={"email": "new@example.org", "api_token": token}
    )
    assert login.status_code == 200
    # The token is never shown again.
    listing = await client.get("/api/v1/teams", headers=admin.auth)
    assert token not in listing.text


async def test_duplicate_email_or_name_is_a_clear_conflict(client, teams):
    admin = await teams.admin()
    await teams.create(name="Taken", email="taken@example.org")
    same_email = await client.post(
        "/api/v1/teams", json={"name": "Other", "email": "TAKEN@example.org"}, headers=admin.auth
    )
    assert same_email.status_code == 409
    assert "taken@example.org" in same_email.json()["error"]["message"]
    same_name = await client.post(
        "/api/v1/teams", json={"name": "taken", "email": "x@example.org"}, headers=admin.auth
    )
    assert same_name.status_code == 409
    assert same_name.json()["error"]["code"] == "name_taken"


async def test_invalid_team_input_says_what_to_fix(client, teams):
    admin = await teams.admin()
    response = await client.post(
        "/api/v1/teams", json={"name": "", "email": "not-an-email"}, headers=admin.auth
    )
    assert response.status_code == 422
    error = response.json()["error"]
    fields = {item["field"] for item in error["details"]}
    assert fields == {"name", "email"}
    assert "email address like" in error["message"]


async def test_team_list_searches_and_paginates(client, teams):
    admin = await teams.admin(name="Organizers")
    for number in range(7):
        await teams.create(name=f"Robots {number}", email=f"robots{number}@example.org")
    await teams.create(name="Other", email="other@example.org")
    page = await client.get("/api/v1/teams?q=robots&size=3&page=3", headers=admin.auth)
    body = page.json()
    assert body["total"] == 7 and body["page"] == 3 and body["size"] == 3
    assert [item["name"] for item in body["items"]] == ["Robots 6"]
    too_big = await client.get("/api/v1/teams?size=1000", headers=admin.auth)
    assert too_big.status_code == 422


async def test_quota_override_is_set_and_audited(client, teams):
    admin = await teams.admin()
    alpha = await teams.create()
    response = await client.patch(
        f"/api/v1/teams/{alpha.id}", json={"daily_submission_limit": 12}, headers=admin.auth
    )
    assert response.json()["daily_submission_limit"] == 12
    audit = (
        await client.get("/api/v1/audit?action=team.quota_override", headers=admin.auth)
    ).json()
    assert audit["items"][0]["details"] == {"previous": None, "limit": 12}


async def test_team_rotates_its_own_token(client, teams):
    alpha = await teams.create()
    response = await client.post("/api/v1/teams/me/rotate-token", headers=alpha.auth)
    assert response.status_code == 200
    new_token = response.json()["api_token"]
    assert (await client.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 401
    headers = {"Authorization": f"Bearer {new_token}"}
    assert (await client.get("/api/v1/teams/me", headers=headers)).status_code == 200


async def test_unknown_team_id_is_404_in_the_error_shape(client, teams):
    admin = await teams.admin()
    response = await client.get("/api/v1/teams/999", headers=admin.auth)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "No team with id 999.",
        "details": None,
    }


async def test_admin_page_creates_a_team_and_shows_the_token_once(client, teams):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    response = await client.post(
        "/admin/teams",
        data={
            "name": "Page Team",
            "email": "page@example.org",
            "role": "participant",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 201
    token = re.search(r'id="issued-token">(pt_[^<]+)<', response.text).group(1)
    assert "Copy this token now" in response.text
    again = await client.get("/admin/teams")
    assert token not in again.text and "Page Team" in again.text
    login = await client.post(
        "/api/v1/auth/login", json={"email": "page@example.org", "api_token": token}
    )
    assert login.status_code == 200


async def test_admin_page_shows_form_errors_and_keeps_the_input(client, teams):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    response = await client.post(
        "/admin/teams", data={"name": "Keep Me", "email": "broken", "csrf_token": csrf}
    )
    assert response.status_code == 422
    assert "email address like team@example.org" in response.text
    assert 'value="Keep Me"' in response.text


async def test_admin_page_deactivates_and_reactivates(client, teams):
    admin = await teams.admin()
    alpha = await teams.create(name="Alpha")
    csrf = await browser_login(client, admin)
    response = await client.post(
        f"/admin/teams/{alpha.id}/active", data={"active": "false", "csrf_token": csrf}
    )
    assert response.status_code == 303
    page = await client.get("/admin/teams")
    assert "Alpha deactivated" in page.text
    assert (await client.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 401
    await client.post(
        f"/admin/teams/{alpha.id}/active", data={"active": "true", "csrf_token": csrf}
    )
    assert (await client.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 200


async def test_admin_cannot_deactivate_itself_from_the_page(client, teams):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    await client.post(
        f"/admin/teams/{admin.id}/active", data={"active": "false", "csrf_token": csrf}
    )
    assert (await client.get("/api/v1/teams/me")).status_code == 200


async def test_htmx_search_returns_only_the_table_fragment(client, teams):
    admin = await teams.admin()
    await teams.create(name="Needle", email="needle@example.org")
    await teams.create(name="Hay", email="hay@example.org")
    await browser_login(client, admin)
    response = await client.get("/admin/teams?q=needle", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="team-table">')
    assert "Needle" in response.text and "Hay" not in response.text
    assert "<html" not in response.text
    assert "HX-Request" in response.headers["vary"]
