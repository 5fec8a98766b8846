"""`GET /api/v1/system` (admin): the System page's figures as JSON, and the page itself."""

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from portal.auth.deps import AdminTeam, PageAdmin
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, RedisDep, SettingsDep
from portal.core.htmx import wants_fragment
from portal.core.templating import render
from portal.evaluation import words
from portal.system import charts, service
from portal.system.schemas import SystemReport

words.register_filters()

router = APIRouter(prefix="/api/v1/system", tags=["system"])
pages = APIRouter(include_in_schema=False)


@router.get("", response_model=SystemReport)
async def read_system(
    admin: AdminTeam, session: SessionDep, redis: RedisDep, settings: SettingsDep, clock: ClockDep
) -> SystemReport:
    """The queue, the workers and their last beat, runs finished per minute over the last
    hour, the latest failures, refusals (LLM gateway, uploads) and row counts."""
    return await service.report(
        session, redis, now=clock(), stale_after_seconds=settings.eval_stale_after_seconds
    )


@pages.get("/admin/system")
async def system_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    # The live part polls every few seconds; the row counts are read with the page only.
    report = await service.report(
        session,
        redis,
        now=clock(),
        stale_after_seconds=settings.eval_stale_after_seconds,
        with_inventory=not wants_fragment(request),
    )
    timezone = ZoneInfo(settings.timezone)
    return render(
        request,
        "system.html",
        {
            "report": report,
            "as_of": report.now.astimezone(timezone).strftime("%H:%M:%S %Z"),
            "finished_chart": charts.finished(report.finished, timezone),
            "gateway_chart": charts.gateway(report.refusals.llm, timezone),
        },
        block="system_live",
    )
