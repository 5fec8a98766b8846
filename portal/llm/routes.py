from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import AdminTeam, CurrentTeam
from portal.core.db import SessionDep
from portal.core.deps import SettingsDep
from portal.core.errors import NotFound
from portal.core.pagination import MAX_ROW_ID
from portal.core.params import OptionalRowId
from portal.llm import service
from portal.llm.schemas import (
    RateLimitPublic,
    RateLimitUpdate,
    TeamUsagePublic,
    UsageReportPublic,
    UsageStep,
    UsageTotals,
)
from portal.llm.service import Totals, UsageReport, Window
from portal.teams import service as teams

router = APIRouter(prefix="/api/v1", tags=["llm usage"])


def totals_public(totals: Totals) -> UsageTotals:
    return UsageTotals(**asdict(totals), exceeded_rate=round(totals.exceeded_rate, 4))


def report_public(report: UsageReport, team_id: int | None) -> UsageReportPublic:
    return UsageReportPublic(
        window=report.window,
        since=report.since,
        until=report.until,
        step_minutes=report.step_minutes,
        team_id=team_id,
        requests_per_minute=report.requests_per_minute,
        totals=totals_public(report.totals),
        series=[UsageStep.model_validate(bucket) for bucket in report.buckets],
        teams=[
            TeamUsagePublic(
                team_id=t.team_id,
                team_name=t.team_name,
                requests_per_minute=t.requests_per_minute,
                totals=totals_public(t.totals),
            )
            for t in report.teams
        ],
    )


@router.get("/usage", response_model=UsageReportPublic)
async def read_usage(
    team: CurrentTeam,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[Window, Query(description="hour, day or all")] = Window.hour,
    team_id: Annotated[
        OptionalRowId, Query(description="admins: one team; default (or empty) every team")
    ] = None,
) -> UsageReportPublic:
    """Gateway calls and tokens over the window: totals, a per-step series and the
    exceeded rate (refused / all calls). A participant sees its own team only."""
    default_rpm = settings.llm_rpm
    if not team.is_admin:
        if team_id not in (None, team.id):
            raise NotFound("No such team.")
        team_id = team.id
    elif team_id is not None:
        await teams.get(session, team_id)  # 404 for an unknown team
    report = await service.report(
        session, window, team_id=team_id, default_rpm=default_rpm, private_runs=team.is_admin
    )
    return report_public(report, team_id)


async def _limit_public(session: AsyncSession, team_id: int, default_rpm: int) -> RateLimitPublic:
    overrides = await service.rate_limit_overrides(session, [team_id])
    return RateLimitPublic(
        team_id=team_id,
        requests_per_minute=overrides.get(team_id, default_rpm),
        is_override=team_id in overrides,
    )


@router.get("/teams/{team_id}/llm-limit", response_model=RateLimitPublic)
async def read_rate_limit(
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> RateLimitPublic:
    await teams.get(session, team_id)
    return await _limit_public(session, team_id, settings.llm_rpm)


@router.put("/teams/{team_id}/llm-limit", response_model=RateLimitPublic)
async def update_rate_limit(
    body: RateLimitUpdate,
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> RateLimitPublic:
    """Set the team's LLM requests per minute (null: back to PORTAL_LLM_RPM). Audited;
    applies from the team's next call in every portal process."""
    team = await teams.get(session, team_id)
    await service.set_rate_limit(session, team, body.requests_per_minute, actor=admin)
    return await _limit_public(session, team_id, settings.llm_rpm)
