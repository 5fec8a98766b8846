from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from portal.auth.deps import PageAdmin, PageTeam
from portal.core.cookies import flash
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep
from portal.core.errors import PortalError, validation_summary
from portal.core.forms import form_action
from portal.core.htmx import redirect
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_PAGE, MAX_ROW_ID, PageParams
from portal.core.params import whole_number
from portal.core.templating import render
from portal.core.text import FreeText, NameText
from portal.leaderboard.refresh import refresh_after_commit
from portal.llm import service as llm_service
from portal.teams import service
from portal.teams.models import Role, role_names
from portal.teams.schemas import TeamCreate

router = APIRouter(include_in_schema=False)
TEAMS_PER_PAGE = 25


@router.post("/dashboard/rotate-token")
async def rotate_own_token(request: Request, team: PageTeam, session: SessionDep) -> Response:
    token = await form_action(session, service.rotate_token, session, team, actor=team)
    if isinstance(token, PortalError):
        response = redirect(request, "/dashboard")
        flash(request, response, token.message, "error")
        return response
    # Rotation ends every session, this one included: show the token, then log in again.
    return render(request, "token_issued.html", {"team": team, "token": token, "own": True})


async def _teams_page(
    request: Request,
    session: SessionDep,
    q: str,
    page: int,
    *,
    form_error: str | None = None,
    form_values: dict | None = None,
    issued: dict | None = None,
    status_code: int = 200,
) -> Response:
    params = PageParams(page=page, size=TEAMS_PER_PAGE)
    result = await service.list_teams(session, q, params)
    llm_limits = await llm_service.limit_overrides(session, [t.id for t in result.items])
    settings = request.app.state.settings
    llm_budgets = {
        t.id: llm_service.budgets_in_force(llm_limits.get(t.id), settings) for t in result.items
    }
    return render(
        request,
        "admin/teams.html",
        {
            "teams": result,
            "llm_limits": llm_limits,
            "llm_budgets": llm_budgets,
            "q": q,
            "form_error": form_error,
            "form_values": form_values or {},
            "issued": issued,
            "roles": [role.value for role in Role],
            "role_names": role_names(),
        },
        status_code=status_code,
        block="team_table",
    )


@router.get("/admin/teams")
async def teams_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    q: Annotated[FreeText, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    return await _teams_page(request, session, q, page)


@router.post("/admin/teams")
async def create_team_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    name: Annotated[NameText, Form(max_length=200)] = "",
    email: Annotated[NameText, Form(max_length=300)] = "",
    role: Annotated[NameText, Form(max_length=20)] = Role.participant.value,
) -> Response:
    values = {"name": name, "email": email, "role": role}
    try:
        data = TeamCreate(name=name, email=email, role=role)
    except ValidationError as exc:
        return await _teams_page(
            request,
            session,
            "",
            1,
            form_error=validation_summary(exc),
            form_values=values,
            status_code=422,
        )
    created = await form_action(session, service.create, session, data, actor=admin)
    if isinstance(created, PortalError):
        return await _teams_page(
            request,
            session,
            "",
            1,
            form_error=created.message,
            form_values=values,
            status_code=created.status_code,
        )
    team, token = created
    return await _teams_page(
        request,
        session,
        "",
        1,
        issued={"team": team, "token": token, "action": "created"},
        status_code=201,
    )


@router.post("/admin/teams/{team_id}/active")
async def set_active_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    broker: BrokerDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    active: Annotated[bool, Form()],
) -> Response:
    team = await service.get(session, team_id)
    response = redirect(request, "/admin/teams")
    outcome = await form_action(session, service.set_active, session, team, active, actor=admin)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    refresh_after_commit(session, broker)
    if active:
        message = _("%(name)s activated.", name=team.name)
    else:
        message = _("%(name)s deactivated (its sessions ended).", name=team.name)
    flash(request, response, message, "success")
    return response


@router.post("/admin/teams/{team_id}/rotate-token")
async def rotate_token_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    team = await service.get(session, team_id)
    token = await form_action(session, service.rotate_token, session, team, actor=admin)
    if isinstance(token, PortalError):
        response = redirect(request, "/admin/teams")
        flash(request, response, token.message, "error")
        return response
    if team.id == admin.id:
        return render(request, "token_issued.html", {"team": team, "token": token, "own": True})
    return await _teams_page(
        request, session, "", 1, issued={"team": team, "token": token, "action": "rotated"}
    )


@router.post("/admin/teams/{team_id}/quota")
async def quota_override_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    daily_limit: Annotated[NameText, Form(max_length=6)] = "",
) -> Response:
    """Per-team daily upload limit; an empty field returns to PORTAL_DAILY_SUBMISSIONS."""
    team = await service.get(session, team_id)
    response = redirect(request, "/admin/teams")
    value = daily_limit.strip()
    limit = whole_number(value)
    if value and limit is None:
        message = _("'%(value)s' is not a number of uploads (0 or more).", value=value)
        flash(request, response, message, "error")
        return response
    outcome = await form_action(
        session, service.set_daily_submission_limit, session, team, limit, actor=admin
    )
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    if limit is None:
        message = _("%(name)s: daily upload limit set to the default.", name=team.name)
    else:
        message = _("%(name)s: daily upload limit set to %(limit)s.", name=team.name, limit=limit)
    flash(request, response, message, "success")
    return response
