"""The audit log's filters as query parameters, read one way by its JSON API and its
CSV export (the page reads its form leniently and builds the same AuditFilter)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BeforeValidator

from portal.audit.service import AuditFilter
from portal.core.deps import SettingsDep
from portal.core.params import OptionalRowId, blank_is_absent
from portal.core.text import NameText
from portal.core.time import day_range, parse_day

ActorQuery = Annotated[OptionalRowId, Query(description="team id of the actor")]
ActionQuery = Annotated[
    NameText | None, Query(max_length=64, description="exact action, or a prefix like 'auth'")
]


def _day_or_absent(value: object) -> object:
    # parse_day's message names the format and the range of days accepted; an empty
    # field (a GET form sends them all) is no filter.
    value = blank_is_absent(value)
    return parse_day(value) if isinstance(value, str) else value


Day = Annotated[date | None, BeforeValidator(_day_or_absent)]


async def audit_filter(
    settings: SettingsDep,
    actor: ActorQuery = None,
    action: ActionQuery = None,
    since: Annotated[Day, Query(description="first day, YYYY-MM-DD")] = None,
    until: Annotated[Day, Query(description="last day, YYYY-MM-DD")] = None,
) -> AuditFilter:
    """Whole days in the competition's timezone, `until` included."""
    start, end = day_range(since, until, settings.timezone)
    return AuditFilter(actor, action, start, end)


AuditFilterDep = Annotated[AuditFilter, Depends(audit_filter)]
