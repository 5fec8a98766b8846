from dataclasses import dataclass
from datetime import datetime
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
from portal.core.i18n import format_number, lazy_gettext
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_ROW_ID
from portal.core.params import grouped_whole_number
from portal.core.templating import humanize_duration, local_time, render
from portal.core.text import FreeText, NameText
from portal.core.time import next_midnight
from portal.evaluation.accounting import Gauge
from portal.llm import chart, service
from portal.llm.budgets import BudgetState, Refusal
from portal.llm.gateway.deps import GatewayDep
from portal.llm.gateway.service import Gateway
from portal.llm.schemas import MAX_MODELS, MODEL_NAME_MAX_LENGTH
from portal.llm.service import LimitOverride, Window
from portal.teams import service as teams

router = APIRouter(include_in_schema=False)

# What the pages call each budget that refused calls (Totals.refused_by's kinds).
REFUSAL_LABELS = {
    Refusal.requests.value: lazy_gettext("Requests per minute"),
    Refusal.tokens.value: lazy_gettext("Tokens (minute or day)"),
    Refusal.parallel.value: lazy_gettext("Calls in flight"),
    Refusal.model.value: lazy_gettext("Model not allowed"),
}


@dataclass(frozen=True)
class BudgetMeter:
    """One budget's use right now as the pages show it: "used / limit", a bar, and
    when it has room again."""

    label: str
    gauge: Gauge
    note: str


def budget_meters(state: BudgetState, timezone: str, now: datetime) -> list[BudgetMeter]:
    """The four budgets of `state` (a Gateway.use answer); `now` by the gateway's clock,
    which decides the day."""
    budgets = state.budgets
    minute = _("resets in %(seconds)s s", seconds=state.minute_reset_seconds)
    midnight = local_time(next_midnight(now, timezone), timezone)
    day = _(
        "resets %(at)s (%(left)s)",
        at=midnight,
        left=humanize_duration(state.day_reset_seconds),
    )
    rows = (
        (_("Requests this minute"), state.requests, budgets.requests_per_minute, minute),
        (_("Tokens this minute"), state.minute_tokens, budgets.tokens_per_minute, minute),
        (_("Tokens today"), state.day_tokens, budgets.tokens_per_day, day),
        (_("Calls in flight"), state.parallel, budgets.max_parallel, _("answering right now")),
    )
    return [
        BudgetMeter(
            label, Gauge(f"{format_number(used)} / {format_number(limit)}", used, limit), note
        )
        for label, used, limit, note in rows
    ]


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
    meters = None
    if report.budgets is not None and team_id is not None:
        in_use = await gateway.use(team_id, report.budgets)
        meters = budget_meters(in_use, settings.timezone, gateway.clock())
    return render(
        request,
        template,
        {
            "report": report,
            "meters": meters,
            "refusal_labels": REFUSAL_LABELS,
            "defaults": service.default_budgets(settings),
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


# The limits form's number fields: (name, label, what it counts, largest value accepted).
LIMIT_FIELDS = (
    (
        "requests_per_minute",
        lazy_gettext("Requests per minute"),
        lazy_gettext("LLM calls per minute"),
        100_000,
    ),
    (
        "tokens_per_minute",
        lazy_gettext("Tokens per minute"),
        lazy_gettext("tokens per minute"),
        1_000_000_000,
    ),
    (
        "tokens_per_day",
        lazy_gettext("Tokens per day"),
        lazy_gettext("tokens per day"),
        1_000_000_000_000,
    ),
    (
        "max_parallel",
        lazy_gettext("Calls in flight at once"),
        lazy_gettext("calls in flight at once"),
        10_000,
    ),
)
LIMIT_LABELS = {name: label for name, label, *_rest in LIMIT_FIELDS} | {
    "models": lazy_gettext("Models")
}
LIMIT_CHANGES_SHOWN = 10


@dataclass(frozen=True)
class FormProblem:
    """What to fix in a form, and the field it is about."""

    field: str
    message: str


def parse_limits(form: dict[str, str]) -> LimitOverride | FormProblem:
    """The limits form as overrides (an empty field: the default), or what to fix."""
    values: dict[str, Any] = {}
    for name, _label, meaning, largest in LIMIT_FIELDS:
        text = form.get(name, "").strip()
        number = grouped_whole_number(text)
        if text and (number is None or number > largest):
            return FormProblem(
                name,
                _(
                    "'%(text)s' is not a number of %(meaning)s (0 to %(largest)s); leave it "
                    "empty for the default.",
                    text=text,
                    meaning=meaning,
                    largest=format_number(largest),
                ),
            )
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
            return FormProblem(
                "models",
                _(
                    "The model name '%(name)s…' is over %(limit)s characters.",
                    name=too_long[:40],
                    limit=MODEL_NAME_MAX_LENGTH,
                ),
            )
        if len(names) > MAX_MODELS:
            return FormProblem(
                "models",
                _(
                    "%(count)s models listed; at most %(limit)s.",
                    count=len(names),
                    limit=MAX_MODELS,
                ),
            )
        values["models"] = names
    return LimitOverride(**values)


def _limit_change(name: str, before: Any, after: Any) -> tuple[str, str, str]:
    """One audited budget change as (label, before, after) in the form's words; two
    model lists as what was added and removed (the lists themselves may be long)."""
    if name == "models" and before and after:
        added = [model for model in after if model not in before]
        removed = [model for model in before if model not in after]
        said = [
            _("added %(models)s", models=", ".join(added)) if added else "",
            _("removed %(models)s", models=", ".join(removed)) if removed else "",
        ]
        changed = "; ".join(part for part in said if part) or _("reordered")
        return str(LIMIT_LABELS[name]), "", changed
    return str(LIMIT_LABELS[name]), _limit_value(name, before), _limit_value(name, after)


def _limit_value(name: str, value: Any) -> str:
    """An audited budget value in the form's words (None: the default)."""
    if value is None:
        return _("default")
    if name == "models":
        return ", ".join(value) if value else _("none")
    return f"{value:,}"


async def _limits_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    gateway: Gateway,
    team_id: int,
    *,
    form: dict[str, str] | None = None,
    problem: FormProblem | None = None,
    status_code: int = 200,
) -> Response:
    team = await teams.get(session, team_id)
    override = (await service.limit_overrides(session, [team_id])).get(team_id)
    budgets = service.budgets_in_force(override, settings)
    in_use = await gateway.use(team_id, budgets)
    if form is None:
        values = (override or LimitOverride()).as_dict()
        form = {
            name: "" if values[name] is None else f"{values[name]:,}"
            for name, *_rest in LIMIT_FIELDS
        }
        models = values["models"]
        form["models"] = "" if models is None else (", ".join(models) if models else "-")
    return render(
        request,
        "admin/llm_limit.html",
        {
            "team": team,
            "form": form,
            "problem": problem,
            "defaults": service.default_budgets(settings),
            "budgets": budgets,
            "meters": budget_meters(in_use, settings.timezone, gateway.clock()),
            "fields": LIMIT_FIELDS,
            "changes": [
                (
                    change,
                    [_limit_change(name, *values) for name, values in change.changes.items()],
                )
                for change in await service.limit_changes(
                    session, team_id, count=LIMIT_CHANGES_SHOWN
                )
            ],
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
    if isinstance(limits, FormProblem):
        return await _limits_page(
            request, session, settings, gateway, team_id, form=form, problem=limits, status_code=422
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
            problem=FormProblem("", outcome.message),
            status_code=outcome.status_code,
        )
    response = redirect(request, "/admin/teams")
    flash(request, response, _("%(team)s: LLM limits saved.", team=team.name), "success")
    return response
