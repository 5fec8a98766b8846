"""The one audit trail: every login, team change, upload, pick, batch action, limit change.

`record` writes in the caller's transaction, so the audit row and the change it
describes commit or roll back together. `record_now` commits on its own, for events
whose request fails on purpose (a refused login must leave a trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from portal.audit.models import AuditLog
from portal.audit.schemas import AuditEntryPublic
from portal.core.logging import client_ip_var, request_id_var
from portal.core.pagination import Page, PageParams, paginate
from portal.teams.models import Team


def _row(
    action: str,
    actor: Team | None,
    target_type: str | None,
    target_id: Any,
    details: dict[str, Any] | None,
) -> AuditLog:
    return AuditLog(
        action=action,
        actor_team_id=actor.id if actor else None,
        actor_role=actor.role if actor else None,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=client_ip_var.get(),
        request_id=request_id_var.get(),
        details=details or {},
    )


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor: Team | None,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(_row(action, actor, target_type, target_id, details))
    await session.flush()


async def record_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    action: str,
    *,
    actor: Team | None = None,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    async with sessionmaker() as session:
        session.add(_row(action, actor, target_type, target_id, details))
        await session.commit()


@dataclass(frozen=True)
class AuditFilter:
    actor_team_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # (target_type, target_id): the entries about one thing, e.g. ("team", "7").
    target: tuple[str, str] | None = None


def entries_statement(
    filters: AuditFilter,
) -> sa.Select[AuditLog, str]:  # name: None when the team is gone
    """The entries `filters` selects, newest first, each with its actor's team name: the
    one query behind the audit page, its API and its CSV export."""
    conditions = []
    if filters.actor_team_id is not None:
        conditions.append(col(AuditLog.actor_team_id) == filters.actor_team_id)
    if filters.action:
        # "auth" matches auth.login and auth.login_failed; "auth.login" matches itself.
        conditions.append(
            sa.or_(
                col(AuditLog.action) == filters.action,
                col(AuditLog.action).startswith(filters.action.rstrip(".") + ".", autoescape=True),
            )
        )
    if filters.target is not None:
        conditions.append(col(AuditLog.target_type) == filters.target[0])
        conditions.append(col(AuditLog.target_id) == filters.target[1])
    if filters.since is not None:
        conditions.append(col(AuditLog.created_at) >= filters.since)
    if filters.until is not None:
        conditions.append(col(AuditLog.created_at) < filters.until)

    return (
        sa.select(AuditLog, col(Team.name))
        .outerjoin(Team, col(Team.id) == AuditLog.actor_team_id)
        .where(*conditions)
        .order_by(col(AuditLog.id).desc())
    )


async def list_entries(
    session: AsyncSession, filters: AuditFilter, page: PageParams
) -> Page[AuditEntryPublic]:
    return await paginate(
        session,
        entries_statement(filters),
        page,
        lambda row: AuditEntryPublic(**row[0].model_dump(), actor_team_name=row.name),
    )


async def known_actions(session: AsyncSession) -> list[str]:
    result = await session.scalars(
        sa.select(col(AuditLog.action)).distinct().order_by(col(AuditLog.action))
    )
    return list(result)
