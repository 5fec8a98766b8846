from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from portal.audit import service
from portal.audit.deps import AuditFilterDep
from portal.audit.schemas import AuditEntryPublic
from portal.auth.deps import AdminTeam, PageAdmin
from portal.core.db import SessionDep
from portal.core.deps import SettingsDep
from portal.core.htmx import wants_fragment
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_PAGE, Page, PageDep, PageParams
from portal.core.params import whole_number
from portal.core.templating import render
from portal.core.text import NameText
from portal.core.time import day_range, parse_day
from portal.teams.models import role_names

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
pages = APIRouter(include_in_schema=False)
ENTRIES_PER_PAGE = 50


@router.get("", response_model=Page[AuditEntryPublic])
async def list_audit(
    admin: AdminTeam, session: SessionDep, filters: AuditFilterDep, page: PageDep
) -> Page[AuditEntryPublic]:
    return await service.list_entries(session, filters, page)


@pages.get("/admin/audit")
async def audit_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    actor: Annotated[NameText, Query(max_length=12)] = "",
    action: Annotated[NameText, Query(max_length=64)] = "",
    # Longer than a date may be, so a mistyped one gets the form's message, not a 422.
    since: Annotated[NameText, Query(max_length=40)] = "",
    until: Annotated[NameText, Query(max_length=40)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    # Empty form fields arrive as "", so parse leniently and say what was ignored.
    problems = []
    actor_id = whole_number(actor)
    if actor and actor_id is None:
        problems.append(_("Actor must be a team id (a number)."))
    parsed: dict[str, date | None] = {}
    for label, raw in (("since", since), ("until", until)):
        try:
            parsed[label] = parse_day(raw) if raw else None
        except ValueError as exc:
            parsed[label] = None
            problems.append(str(exc))
    start, end = day_range(parsed["since"], parsed["until"], settings.timezone)
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
            "role_names": role_names(),
            # The CSV export of exactly the rows shown: the filters applied, without the
            # ones the page ignored (listed in `problems`).
            "export_query": {
                name: value
                for name, value in (
                    ("actor", actor_id),
                    ("action", action),
                    ("since", parsed["since"]),
                    ("until", parsed["until"]),
                )
                if value not in (None, "")
            },
        },
        block="audit_table",
    )
