from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import AdminTeam, CurrentTeam
from portal.core.config import Settings
from portal.core.db import SessionDep
from portal.core.deps import SettingsDep
from portal.core.errors import NotFound
from portal.core.pagination import MAX_ROW_ID
from portal.core.params import OptionalRowId
from portal.llm import service
from portal.llm.budgets import BudgetState
from portal.llm.gateway.deps import GatewayDep
from portal.llm.schemas import (
    BudgetsPublic,
    BudgetUsePublic,
    RateLimitPublic,
    RateLimitUpdate,
    TeamUsagePublic,
    UsageReportPublic,
    UsageStep,
    UsageTotals,
)
from portal.llm.service import LimitOverride, Totals, UsageReport, Window
from portal.teams import service as teams

router = APIRouter(prefix="/api/v1", tags=["llm usage"])


def totals_public(totals: Totals) -> UsageTotals:
    return UsageTotals(
        **asdict(totals),
        exceeded_rate=round(totals.exceeded_rate, 4),
        exceeded_rate_by={k: round(v, 4) for k, v in totals.exceeded_rate_by.items()},
    )


def budget_use_public(state: BudgetState) -> BudgetUsePublic:
    return BudgetUsePublic(
        requests_this_minute=state.requests,
        tokens_this_minute=state.minute_tokens,
        tokens_today=state.day_tokens,
        tokens_owed=state.owed_tokens,
        in_flight=state.parallel,
        minute_resets_in_seconds=state.minute_reset_seconds,
        day_resets_in_seconds=state.day_reset_seconds,
    )


def report_public(
    report: UsageReport, team_id: int | None, in_use: BudgetState | None = None
) -> UsageReportPublic:
    return UsageReportPublic(
        window=report.window,
        since=report.since,
        until=report.until,
        step_minutes=report.step_minutes,
        team_id=team_id,
        requests_per_minute=report.requests_per_minute,
        budgets=BudgetsPublic.model_validate(report.budgets) if report.budgets else None,
        in_use=budget_use_public(in_use) if in_use else None,
        totals=totals_public(report.totals),
        series=[UsageStep.model_validate(bucket) for bucket in report.buckets],
        teams=[
            TeamUsagePublic(
                team_id=t.team_id,
                team_name=t.team_name,
                requests_per_minute=t.requests_per_minute,
                budgets=BudgetsPublic.model_validate(t.budgets),
                totals=totals_public(t.totals),
            )
            for t in report.teams
        ],
    )


@router.get("/usage", response_model=UsageReportPublic)
async def read_usage(
    team: CurrentTeam,
    gateway: GatewayDep,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[Window, Query(description="hour, day or all")] = Window.hour,
    team_id: Annotated[
        OptionalRowId, Query(description="admins: one team; default (or empty) every team")
    ] = None,
) -> UsageReportPublic:
    """Gateway calls and tokens over the window: totals, a per-step series and the
    exceeded rate (refused / all calls, in all and per budget); for one team also its
    budgets and how much of each it is using right now."""
    if not team.is_admin:
        if team_id not in (None, team.id):
            raise NotFound("No such team.")
        team_id = team.id
    elif team_id is not None:
        await teams.get(session, team_id)  # 404 for an unknown team
    report = await service.report(
        session, window, team_id=team_id, settings=settings, private_runs=team.is_admin
    )
    in_use = None
    if team_id is not None and report.budgets is not None:
        in_use = await gateway.use(team_id, report.budgets)
    return report_public(report, team_id, in_use)


async def _limit_public(session: AsyncSession, team_id: int, settings: Settings) -> RateLimitPublic:
    override = (await service.limit_overrides(session, [team_id])).get(team_id)
    budgets = service.budgets_in_force(override, settings)
    overridden = override.overridden if override else []
    return RateLimitPublic(
        team_id=team_id,
        **BudgetsPublic.model_validate(budgets).model_dump(),
        overridden=overridden,
        is_override=bool(overridden),
    )


@router.get("/teams/{team_id}/llm-limit", response_model=RateLimitPublic)
async def read_rate_limit(
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> RateLimitPublic:
    """The team's LLM budgets in force, and which of them are set for it."""
    await teams.get(session, team_id)
    return await _limit_public(session, team_id, settings)


@router.put("/teams/{team_id}/llm-limit", response_model=RateLimitPublic)
async def update_rate_limit(
    body: RateLimitUpdate,
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> RateLimitPublic:
    """Set the team's LLM budgets: requests and tokens per minute, tokens per day,
    calls in flight and the models it may call. Each null (or left out) returns to its
    PORTAL_LLM_* default. Audited; applies from the team's next call in every portal
    process."""
    team = await teams.get(session, team_id)
    await service.set_limits(session, team, LimitOverride.read_from(body), actor=admin)
    return await _limit_public(session, team_id, settings)
