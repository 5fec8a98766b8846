"""A refused or failed form action leaves nothing behind: no row, no quota, no success audit.

A page answers a refusal with a page and its request's transaction then commits, so
each form below is refused after (or while) its service could have written something,
and the database is checked for what survived (portal.core.forms.form_action).
"""

import asyncio

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.audit import service as audit
from portal.core.db import after_commit, commit, psycopg_conninfo
from portal.core.errors import Conflict
from portal.core.forms import form_action
from portal.main import create_app
from portal.teams.models import Team
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login, csrf_from_login_page

HX = {"HX-Request": "true"}


def scalar(services, sql: str, *params):
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        return conn.execute(sql, params).fetchone()[0]


def audit_actions(services, prefix: str) -> list[str]:
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        rows = conn.execute(
            "SELECT action FROM audit_log WHERE action LIKE %s ORDER BY id", (prefix + "%",)
        )
        return [action for (action,) in rows]


async def test_a_refused_login_records_only_the_failure(client, teams, services):
    alpha = await teams.create()
    csrf = await csrf_from_login_page(client)
    response = await client.post(
        "/login", data={"email": alpha.email, "api_token": "pt_wrong", "csrf_token": csrf}
    )
    assert response.status_code == 401
    assert "not correct" in response.text
    assert audit_actions(services, "auth.") == ["auth.login_failed"]


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
async def test_a_dashboard_upload_with_storage_down_leaves_no_row_quota_or_success_audit(
    settings, teams, services, tmp_path, htmx
):
    blocked = tmp_path / "storage-is-a-file"
    blocked.write_text("not a directory")
    app = create_app(settings.model_copy(update={"storage_local_dir": blocked}))
    alpha = await teams.create()
    async with app.router.lifespan_context(app), make_client(app) as client:
        csrf = await browser_login(client, alpha)
        response = await client.post(
            "/submissions",
            files={"file": ("lost.py", b"lost = 1\n", "text/x-python")},
            data={"csrf_token": csrf},
            headers=HX if htmx else {},
        )
        page = response if htmx else await client.get("/dashboard")
    assert response.status_code == (503 if htmx else 303)
    assert "nothing was saved and no quota was used" in page.text
    assert "5 of 5</strong> uploads left today" in page.text
    assert '<span class="filename" title="lost.py">lost.py</span>' not in page.text
    assert scalar(services, "SELECT count(*) FROM submission") == 0
    assert scalar(services, "SELECT coalesce(sum(used), 0) FROM submission_quota") == 0
    assert audit_actions(services, "submission.") == ["submission.upload_refused"]
    reason = scalar(
        services, "SELECT details->>'reason' FROM audit_log WHERE action LIKE 'submission.%%'"
    )
    assert reason == "storage_unavailable"


async def test_a_final_pick_over_the_limit_changes_no_pick(client, teams, services):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    ids = []
    for n in range(3):
        created = await client.post(
            "/api/v1/submissions",
            files={"file": (f"s{n}.py", f"s = {n}\n".encode(), "text/x-python")},
            headers={"X-CSRF-Token": csrf},
        )
        ids.append(created.json()["id"])
    headers = {**HX, "X-CSRF-Token": csrf}
    for submission_id in ids[:2]:
        await client.post(
            f"/submissions/{submission_id}/final", data={"final": "true"}, headers=headers
        )
    refused = await client.post(
        f"/submissions/{ids[2]}/final", data={"final": "true"}, headers=headers
    )
    assert refused.status_code == 409
    assert scalar(services, "SELECT count(*) FROM submission WHERE is_final") == 2
    assert audit_actions(services, "submission.pick") == ["submission.pick"] * 2


async def test_creating_a_team_with_a_taken_name_adds_no_team(client, teams, services):
    admin = await teams.admin(name="Admins")
    csrf = await browser_login(client, admin)
    response = await client.post(
        "/admin/teams",
        data={
            "name": "admins",
            "email": "other@example.org",
            "role": "participant",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 409
    assert "already exists" in response.text
    assert scalar(services, "SELECT count(*) FROM team") == 1
    assert audit_actions(services, "team.create") == ["team.create"]  # the factory's own


async def test_an_admin_deactivating_itself_is_refused_and_stays_active(client, teams, services):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    response = await client.post(
        f"/admin/teams/{admin.id}/active", data={"active": "false", "csrf_token": csrf}
    )
    assert response.status_code == 303
    page = await client.get("/admin/teams")
    assert "You cannot deactivate your own account." in page.text
    assert scalar(services, "SELECT is_active FROM team WHERE id = %s", admin.id) is True
    assert audit_actions(services, "team.deactivate") == []


async def test_a_daily_limit_that_is_not_a_number_changes_nothing(client, teams, services):
    admin = await teams.admin()
    alpha = await teams.create()
    csrf = await browser_login(client, admin)
    await client.post(
        f"/admin/teams/{alpha.id}/quota", data={"daily_limit": "lots", "csrf_token": csrf}
    )
    page = await client.get("/admin/teams")
    assert "is not a number of uploads" in page.text
    assert (
        scalar(services, "SELECT daily_submission_limit FROM team WHERE id = %s", alpha.id) is None
    )
    assert audit_actions(services, "team.quota_override") == []


async def test_an_llm_limit_out_of_range_changes_nothing(client, teams, services):
    admin = await teams.admin()
    alpha = await teams.create()
    csrf = await browser_login(client, admin)
    page = await client.post(
        f"/admin/teams/{alpha.id}/llm-limit",
        data={"requests_per_minute": "100001", "csrf_token": csrf},
    )
    assert page.status_code == 422
    assert "is not a number of LLM calls per minute" in page.text
    assert scalar(services, "SELECT count(*) FROM llm_usage_rate_limit") == 0
    assert audit_actions(services, "llm.rate_limit") == []


async def test_create_and_start_with_nothing_to_evaluate_leaves_no_draft_batch(
    client, teams, services
):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    response = await client.post(
        "/admin/batches",
        data={
            "name": "Nightly",
            "seeds": "1-3",
            "selection": "final_picks",
            "start_now": "true",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 409
    assert "There is nothing to evaluate" in response.text
    assert "Nightly" in response.text  # the form keeps what was typed
    assert scalar(services, "SELECT count(*) FROM evaluation_batch") == 0
    assert audit_actions(services, "batch.") == []


async def test_starting_a_batch_with_nothing_to_evaluate_leaves_it_a_draft(client, teams, services):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "Later", "seeds": [1], "selection": "final_picks"},
    )
    batch_id = created.json()["id"]
    response = await client.post(f"/admin/batches/{batch_id}/start", data={"csrf_token": csrf})
    assert response.status_code == 303
    page = await client.get(f"/admin/batches/{batch_id}")
    assert "There is nothing to evaluate" in page.text
    assert scalar(services, "SELECT status FROM evaluation_batch") == "draft"
    assert scalar(services, "SELECT count(*) FROM batch_submission") == 0
    assert audit_actions(services, "batch.") == ["batch.create"]


@pytest.mark.parametrize("refused", [True, False], ids=["refused", "done"])
async def test_an_action_sends_the_jobs_it_queued_only_if_it_is_kept(app, refused):
    sent: list[str] = []

    async def action(session):
        after_commit(session, lambda: sent.append("job"))
        if refused:
            raise Conflict("Refused after queuing a job.")

    async with app.state.sessionmaker() as session:
        outcome = await form_action(session, action, session)
        await commit(session)
    assert isinstance(outcome, Conflict) == refused
    assert sent == ([] if refused else ["job"])


async def test_a_refusal_after_a_failed_write_still_renders_and_keeps_earlier_work(
    app, teams, services
):
    """A service that catches the database refusing its write (a unique index) and
    raises a refusal: the request goes on to render the form and commit what it did
    before the action, instead of failing on a session stuck in its failed flush."""
    await teams.create(name="Taken")

    async def action(session):
        session.add(
            Team(name="Taken", email="copy@example.org", token_hash="0" * 64, token_prefix="pt_0")
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict("That name is taken.") from exc

    async with app.state.sessionmaker() as session:
        await audit.record(session, "test.before", actor=None)
        outcome = await form_action(session, action, session)
        names = (await session.scalars(sa.select(Team.name))).all()
        await commit(session)
    assert isinstance(outcome, Conflict)
    assert names == ["Taken"]
    assert audit_actions(services, "test.") == ["test.before"]


async def test_a_team_name_differing_only_in_the_case_of_a_non_ascii_letter_is_refused(
    client, teams, services
):
    admin = await teams.admin()
    await teams.create(name="ÀB")
    csrf = await browser_login(client, admin)
    on_the_page = await client.post(
        "/admin/teams",
        data={"name": "Àb", "email": "page@example.org", "role": "participant", "csrf_token": csrf},
    )
    assert on_the_page.status_code == 409
    assert "already exists" in on_the_page.text
    by_the_api = await client.post(
        "/api/v1/teams", json={"name": "ÀB", "email": "api@example.org"}, headers=admin.auth
    )
    assert by_the_api.status_code == 409
    assert by_the_api.json()["error"]["code"] == "name_taken"
    assert scalar(services, "SELECT count(*) FROM team") == 2


async def test_creating_the_same_team_from_many_forms_at_once_makes_one(client, teams, services):
    admin = await teams.admin()
    csrf = await browser_login(client, admin)

    async def create(number: int):
        form = {"name": "Rush", "email": f"rush{number}@example.org", "csrf_token": csrf}
        return await client.post("/admin/teams", data={**form, "role": "participant"})

    answers = await asyncio.gather(*(create(number) for number in range(8)))
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * 7
    assert scalar(services, "SELECT count(*) FROM team WHERE name = 'Rush'") == 1
