from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from portal.audit import service
from portal.audit.schemas import AuditEntryPublic
from portal.auth.deps import AdminTeam, PageAdmin
from portal.core.db import SessionDep
from portal.core.pagination import MAX_PAGE, MAX_ROW_ID, Page, PageDep, PageParams
from portal.core.templating import render, wants_fragment
from portal.core.text import NameText

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
pages = APIRouter(include_in_schema=False)
ENTRIES_PER_PAGE = 50

ActorQuery = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="team id of the actor")]
ActionQuery = Annotated[
    NameText | None, Query(max_length=64, description="exact action, or a prefix like 'auth'")
]


def _day_bounds(since: date | None, until: date | None, timezone: str):
    """Dates are whole days in the competition timezone; `until` is inclusive."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(since, time.min, tzinfo=zone) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone) if until else None
    return start, end


@router.get("", response_model=Page[AuditEntryPublic])
async def list_audit(
    request: Request,
    admin: AdminTeam,
    session: SessionDep,
    page: PageDep,
    actor: ActorQuery = None,
    action: ActionQuery = None,
    since: Annotated[date | None, Query(description="first day, YYYY-MM-DD")] = None,
    until: Annotated[date | None, Query(description="last day, YYYY-MM-DD")] = None,
):
    start, end = _day_bounds(since, until, request.app.state.settings.timezone)
    result = await service.list_entries(
        session, service.AuditFilter(actor, action, start, end), page
    )
    items = [
        AuditEntryPublic(**entry.model_dump(), actor_team_name=name) for entry, name in result.items
    ]
    return Page(items=items, page=result.page, size=result.size, total=result.total)


@pages.get("/admin/audit")
async def audit_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    actor: Annotated[NameText, Query(max_length=12)] = "",
    action: Annotated[NameText, Query(max_length=64)] = "",
    since: Annotated[NameText, Query(max_length=10)] = "",
    until: Annotated[NameText, Query(max_length=10)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    # Empty form fields arrive as "", so parse leniently and say what was ignored.
    problems = []
    actor_id = int(actor) if actor.isdigit() else None
    if actor and actor_id is None:
        problems.append("Actor must be a team id (a number).")
    parsed: dict[str, date | None] = {}
    for label, raw in (("since", since), ("until", until)):
        try:
            parsed[label] = date.fromisoformat(raw) if raw else None
        except ValueError:
            parsed[label] = None
            problems.append(f"'{raw}' is not a date; use YYYY-MM-DD.")
    start, end = _day_bounds(parsed["since"], parsed["until"], request.app.state.settings.timezone)
    result = await service.list_entries(
        session,
        service.AuditFilter(actor_id, action or None, start, end),
        PageParams(page=page, size=ENTRIES_PER_PAGE),
    )
    return render(
        request,
        "admin/audit.html",
        {
            "entries": result,
            "filters": {"actor": actor, "action": action, "since": since, "until": until},
            # Only the full page shows the action list; filter polls skip the scan.
            "actions": [] if wants_fragment(request) else await service.known_actions(session),
            "problems": problems,
        },
        block="audit_table",
    )
