from typing import Annotated, Any
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
from portal.core.text import FreeText, NameText
from portal.llm import chart, service
from portal.llm.gateway.deps import GatewayDep
from portal.llm.gateway.service import Gateway
from portal.llm.schemas import MAX_MODELS, MODEL_NAME_MAX_LENGTH
from portal.llm.service import LimitOverride, Window
from portal.teams import service as teams

router = APIRouter(include_in_schema=False)


async def _usage_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    gateway: Gateway,
    window: Window,
    team_id: int | None,
    template: str,
    *,
    private_runs: bool,
    csv_url: str | None = None,
) -> Response:
    report = await service.report(
        session, window, team_id=team_id, settings=settings, private_runs=private_runs
    )
    in_use = None
    if report.budgets is not None and team_id is not None:
        in_use = await gateway.use(team_id, report.budgets)
    return render(
        request,
        template,
        {
            "report": report,
            "in_use": in_use,
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
    gateway: GatewayDep,
    window: Annotated[Window, Query()] = Window.hour,
) -> Response:
    return await _usage_page(
        request,
        session,
        settings,
        gateway,
        window,
        team.id,
        "usage.html",
        private_runs=team.is_admin,
    )


@router.get("/admin/usage")
async def admin_usage_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    window: Annotated[Window, Query()] = Window.hour,
) -> Response:
    return await _usage_page(
        request,
        session,
        settings,
        gateway,
        window,
        None,
        "admin/usage.html",
        private_runs=True,
        csv_url=f"/api/v1/exports/usage.csv?window={window.value}",
    )


# The limits form's number fields: (name, what it counts, largest value accepted).
LIMIT_FIELDS = (
    ("requests_per_minute", "LLM calls per minute", 100_000),
    ("tokens_per_minute", "tokens per minute", 1_000_000_000),
    ("tokens_per_day", "tokens per day", 1_000_000_000_000),
    ("max_parallel", "calls in flight at once", 10_000),
)


def parse_limits(form: dict[str, str]) -> LimitOverride | str:
    """The limits form as overrides (an empty field: the default), or what to fix."""
    values: dict[str, Any] = {}
    for name, meaning, largest in LIMIT_FIELDS:
        text = form.get(name, "").strip()
        number = whole_number(text)
        if text and (number is None or number > largest):
            return f"'{text}' is not a number of {meaning} (0 to {largest}); leave it empty for the default."
        values[name] = number if text else None
    models_text = form.get("models", "")
    if models_text.strip() == "":
        values["models"] = None
    elif models_text.strip() == "-":
        values["models"] = ()
    else:
        names = tuple(
            dict.fromkeys(n.strip() for n in models_text.replace("\n", ",").split(",") if n.strip())
        )
        too_long = next((n for n in names if len(n) > MODEL_NAME_MAX_LENGTH), None)
        if too_long is not None:
            return f"The model name '{too_long[:40]}…' is over {MODEL_NAME_MAX_LENGTH} characters."
        if len(names) > MAX_MODELS:
            return f"{len(names)} models listed; at most {MAX_MODELS}."
        values["models"] = names
    return LimitOverride(**values)


async def _limits_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    gateway: Gateway,
    team_id: int,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    team = await teams.get(session, team_id)
    override = (await service.limit_overrides(session, [team_id])).get(team_id)
    budgets = service.budgets_in_force(override, settings)
    in_use = await gateway.use(team_id, budgets)
    if form is None:
        values = (override or LimitOverride()).as_dict()
        form = {
            name: "" if values[name] is None else str(values[name]) for name, *_ in LIMIT_FIELDS
        }
        models = values["models"]
        form["models"] = "" if models is None else (", ".join(models) if models else "-")
    return render(
        request,
        "admin/llm_limit.html",
        {
            "team": team,
            "form": form,
            "error": error,
            "defaults": service.default_budgets(settings),
            "budgets": budgets,
            "in_use": in_use,
            "fields": LIMIT_FIELDS,
        },
        status_code=status_code,
    )


@router.get("/admin/teams/{team_id}/llm-limit")
async def limits_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    return await _limits_page(request, session, settings, gateway, team_id)


@router.post("/admin/teams/{team_id}/llm-limit")
async def limits_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    gateway: GatewayDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    requests_per_minute: Annotated[NameText, Form(max_length=20)] = "",
    tokens_per_minute: Annotated[NameText, Form(max_length=20)] = "",
    tokens_per_day: Annotated[NameText, Form(max_length=20)] = "",
    max_parallel: Annotated[NameText, Form(max_length=20)] = "",
    models: Annotated[FreeText, Form(max_length=13_000)] = "",
) -> Response:
    """A team's LLM budgets; an empty field returns that budget to its default."""
    team = await teams.get(session, team_id)
    form = {
        "requests_per_minute": requests_per_minute,
        "tokens_per_minute": tokens_per_minute,
        "tokens_per_day": tokens_per_day,
        "max_parallel": max_parallel,
        "models": models,
    }
    limits = parse_limits(form)
    if isinstance(limits, str):
        return await _limits_page(
            request, session, settings, gateway, team_id, form=form, error=limits, status_code=422
        )
    outcome = await form_action(session, service.set_limits, session, team, limits, actor=admin)
    if isinstance(outcome, PortalError):
        return await _limits_page(
            request,
            session,
            settings,
            gateway,
            team_id,
            form=form,
            error=outcome.message,
            status_code=outcome.status_code,
        )
    response = redirect(request, "/admin/teams")
    flash(request, response, f"{team.name}: LLM limits saved.", "success")
    return response
