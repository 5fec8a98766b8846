from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response

from portal.auth.deps import PageAdmin, PageTeam
from portal.core.config import Settings
from portal.core.cookies import flash
from portal.core.db import SessionDep
from portal.core.deps import SettingsDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.htmx import redirect
from portal.core.pagination import MAX_ROW_ID
from portal.core.params import whole_number
from portal.core.templating import render
from portal.core.text import NameText
from portal.llm import chart, service
from portal.llm.service import Window
from portal.teams import service as teams

router = APIRouter(include_in_schema=False)


async def _usage_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    window: Window,
    team_id: int | None,
    template: str,
    *,
    private_runs: bool,
    csv_url: str | None = None,
) -> Response:
    report = await service.report(
        session, window, team_id=team_id, default_rpm=settings.llm_rpm, private_runs=private_runs
    )
    return render(
        request,
        template,
        {
            "report": report,
            "chart": chart.usage(report, ZoneInfo(settings.timezone)),
            "windows": list(Window),
            "window": window,
            "csv_url": csv_url,
        },
        block="usage_live",
    )


@router.get("/usage")
async def team_usage_page(
    request: Request,
    team: PageTeam,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[Window, Query()] = Window.hour,
) -> Response:
    return await _usage_page(
        request, session, settings, window, team.id, "usage.html", private_runs=team.is_admin
    )


@router.get("/admin/usage")
async def admin_usage_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[Window, Query()] = Window.hour,
) -> Response:
    return await _usage_page(
        request,
        session,
        settings,
        window,
        None,
        "admin/usage.html",
        private_runs=True,
        csv_url=f"/api/v1/exports/usage.csv?window={window.value}",
    )


@router.post("/admin/teams/{team_id}/llm-limit")
async def rate_limit_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    requests_per_minute: Annotated[NameText, Form(max_length=7)] = "",
) -> Response:
    """Per-team LLM calls per minute; an empty field returns to PORTAL_LLM_RPM."""
    team = await teams.get(session, team_id)
    response = redirect(request, "/admin/teams")
    value = requests_per_minute.strip()
    limit = whole_number(value)
    if value and (limit is None or limit > 100_000):
        flash(
            request,
            response,
            f"'{value}' is not a number of LLM calls per minute (0 to 100000).",
            "error",
        )
        return response
    outcome = await form_action(session, service.set_rate_limit, session, team, limit, actor=admin)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    shown = limit if limit is not None else f"the default ({settings.llm_rpm})"
    flash(request, response, f"{team.name}: LLM calls per minute set to {shown}.", "success")
    return response
