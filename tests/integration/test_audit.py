"""The audit trail: one row per action, filters, pagination, admin page."""

from datetime import date, timedelta

import pytest

from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.factories import TeamFactory, browser_login


async def test_team_actions_are_audited_with_actor_and_target(client, teams):
    admin = await teams.admin(name="Boss")
    created = await client.post(
        "/api/v1/teams",
        json={"name": "Audited", "email": "audited@example.org"},
        headers=admin.auth,
    )
    team_id = created.json()["id"]
    await client.post(f"/api/v1/teams/{team_id}/rotate-token", headers=admin.auth)
    await client.patch(f"/api/v1/teams/{team_id}", json={"is_active": False}, headers=admin.auth)
    entries = (await client.get(f"/api/v1/audit?actor={admin.id}", headers=admin.auth)).json()
    actions = [entry["action"] for entry in entries["items"]]
    assert actions == ["team.deactivate", "team.rotate_token", "team.create"]
    for entry in entries["items"]:
        assert entry["actor_team_name"] == "Boss"
        assert entry["actor_role"] == "admin"
        assert entry["target_type"] == "team" and entry["target_id"] == str(team_id)
        assert entry["request_id"]
    # Rotation records the new prefix, never the token.
    assert entries["items"][1]["details"].keys() == {"token_prefix"}


async def test_audit_filters_by_action_prefix_and_date_range(client, teams):
    admin = await teams.admin()
    alpha = await teams.create()
    await client.post("/api/v1/auth/login", json={"email": alpha.email, "api_token": "pt_bad"})
    await client.post("/api/v1/auth/login", json={"email": alpha.email, "api_token": alpha.token})
    auth = (await client.get("/api/v1/audit?action=auth", headers=admin.auth)).json()
    assert {e["action"] for e in auth["items"]} == {"auth.login", "auth.login_failed"}
    exact = (await client.get("/api/v1/audit?action=auth.login", headers=admin.auth)).json()
    assert {e["action"] for e in exact["items"]} == {"auth.login"}
    today = date.today()
    yesterday = today - timedelta(days=1)
    in_range = await client.get(
        f"/api/v1/audit?since={today}&until={today + timedelta(days=1)}", headers=admin.auth
    )
    assert in_range.json()["total"] >= 4
    before = await client.get(f"/api/v1/audit?until={yesterday}", headers=admin.auth)
    assert before.json()["total"] == 0


async def test_audit_paginates_newest_first(client, teams):
    admin = await teams.admin()
    for number in range(5):
        await client.post(
            "/api/v1/teams",
            json={"name": f"T{number}", "email": f"t{number}@example.org"},
            headers=admin.auth,
        )
    first = (await client.get("/api/v1/audit?size=2&page=1", headers=admin.auth)).json()
    second = (await client.get("/api/v1/audit?size=2&page=2", headers=admin.auth)).json()
    assert first["total"] == 6  # the admin (factory) + five API creations
    assert first["items"][0]["id"] > first["items"][1]["id"] > second["items"][0]["id"]


async def test_audit_page_filters_and_reports_bad_dates(client, teams):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    await client.post(
        "/admin/teams", data={"name": "Z", "email": "z@example.org", "csrf_token": csrf}
    )
    page = await client.get("/admin/audit?action=team.create")
    assert page.status_code == 200
    assert "<code>team.create</code>" in page.text
    assert "<code>auth.login</code>" not in page.text
    bad = await client.get("/admin/audit?since=yesterday")
    assert "is not a date; use YYYY-MM-DD" in bad.text


EXTREMES = [
    # (since, until, whether today's entries are in range)
    ("0001-01-01", "9999-12-31", True),
    ("0001-01-01", "", True),
    ("", "9999-12-31", True),
    ("9999-12-31", "", False),
    ("", "0001-01-01", False),
]


def date_filter(since: str, until: str) -> str:
    return "&".join(
        f"{name}={value}" for name, value in (("since", since), ("until", until)) if value
    )


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
async def test_the_first_and_last_calendar_days_are_valid_filters(settings, timezone):
    app = create_app(settings.model_copy(update={"timezone": timezone}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        admin = await TeamFactory(app.state.sessionmaker).admin()
        csrf = await browser_login(client, admin)
        for since, until, found in EXTREMES:
            api = await client.get(f"/api/v1/audit?{date_filter(since, until)}", headers=admin.auth)
            assert api.status_code == 200, (since, until, api.text)
            assert (api.json()["total"] > 0) is found, (since, until)
            page = await client.get(f"/admin/audit?{date_filter(since, until)}")
            assert page.status_code == 200, (since, until, page.text)
            assert ("<code>auth.login</code>" in page.text) is found, (since, until)
    assert csrf


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", ["0000-01-01", "10000-01-01", "9999-13-01"])
async def test_a_date_outside_the_calendar_says_which_days_are_accepted(
    client, teams, field, value
):
    admin = await teams.admin()
    api = await client.get(f"/api/v1/audit?{field}={value}", headers=admin.auth)
    assert api.status_code == 422
    error = api.json()["error"]
    assert error["code"] == "validation_error"
    assert "use YYYY-MM-DD, a day from 0001-01-01 to 9999-12-31" in error["message"]
    await browser_login(client, admin)
    page = await client.get(f"/admin/audit?{field}={value}")
    assert page.status_code == 200
    assert f"&#39;{value}&#39; is not a date; use YYYY-MM-DD, a day from 0001-01-01" in page.text


async def test_the_filter_form_sent_with_empty_fields_lists_everything(client, teams):
    # A GET form sends every field it has: left empty, a field filters nothing.
    admin = await teams.admin()
    await browser_login(client, admin)
    page = await client.get("/admin/audit?action=&actor=&since=&until=")
    assert page.status_code == 200
    assert "<code>auth.login</code>" in page.text
    api = await client.get("/api/v1/audit?action=&actor=&since=&until=", headers=admin.auth)
    assert api.status_code == 200
    assert api.json()["total"] >= 1
