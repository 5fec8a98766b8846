"""Team rules: creation, tokens, activation. Takes a session, never commits."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.audit import service as audit
from portal.core.errors import Conflict, NotFound
from portal.core.i18n import gettext as _
from portal.core.pagination import Page, PageParams, first_column, paginate, search
from portal.core.security import hash_token, new_api_token, visible_prefix
from portal.core.time import utcnow
from portal.teams.models import Role, Team
from portal.teams.schemas import TeamCreate


async def get(session: AsyncSession, team_id: int) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound(_("No team with id %(id)s.", id=team_id))
    return team


async def get_by_email(session: AsyncSession, email: str) -> Team | None:
    return await session.scalar(sa.select(Team).where(col(Team.email) == email.strip().lower()))


async def require_by_email(session: AsyncSession, email: str) -> Team:
    team = await get_by_email(session, email)
    if team is None:
        raise NotFound(_("No team with email %(email)s.", email=email.strip().lower()))
    return team


def select_by_token(*columns: Any) -> sa.Select:
    """The one lookup of the team holding an API token: the API's login and the LLM
    gateway both use it.

    Only the token's SHA-256 hash is stored: execute it with `{"token_hash":
    hash_token(token)}`. A parameter rather than a value, so the gateway builds the
    statement once (building one per call costs more CPU than the raw SQL it replaced).
    `columns` picks what to load, the whole team by default.
    """
    return sa.select(*columns or (Team,)).where(col(Team.token_hash) == sa.bindparam("token_hash"))


async def find_by_token(session: AsyncSession, token: str) -> Team | None:
    return await session.scalar(select_by_token(), {"token_hash": hash_token(token)})


async def authenticate(session: AsyncSession, email: str, token: str) -> Team | None:
    """The active team owning both this email and this token, else None."""
    team = await find_by_token(session, token)
    if team is None or team.email != email.strip().lower() or not team.is_active:
        return None
    return team


async def create(
    session: AsyncSession, data: TeamCreate, *, actor: Team | None
) -> tuple[Team, str]:
    """Create a team; returns it with its API token, which is not stored anywhere."""
    if await get_by_email(session, data.email):
        raise Conflict(
            _("A team with email %(email)s already exists.", email=data.email), code="email_taken"
        )
    # Lowered by the database on both sides, as its unique index does: Python's lower()
    # and PostgreSQL's differ beyond ASCII (a C-locale server leaves "À" as it is).
    name_taken = await session.scalar(
        sa.select(col(Team.id)).where(sa.func.lower(col(Team.name)) == sa.func.lower(data.name))
    )
    if name_taken:
        raise Conflict(
            _("A team named %(name)s already exists.", name=repr(data.name)), code="name_taken"
        )
    token = new_api_token()
    team = Team(
        name=data.name,
        email=data.email,
        role=data.role,
        token_hash=hash_token(token),
        token_prefix=visible_prefix(token),
    )
    try:
        # A savepoint, so losing a race on the unique index leaves the transaction usable.
        # The row is added inside it: begin_nested() flushes what is pending first, and
        # a failure there would roll back the whole transaction instead.
        async with session.begin_nested():
            session.add(team)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            _(
                "A team with email %(email)s or name %(name)s already exists.",
                email=data.email,
                name=repr(data.name),
            ),
            code="team_exists",
        ) from exc
    await session.refresh(team)
    await audit.record(
        session,
        "team.create",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"name": team.name, "email": team.email, "role": team.role},
    )
    return team, token


async def rotate_token(session: AsyncSession, team: Team, *, actor: Team | None) -> str:
    """New token; the old one stops working and every session of the team ends."""
    # Lock the row: two concurrent rotations must both bump the epoch.
    await session.refresh(team, with_for_update=True)
    token = new_api_token()
    team.token_hash = hash_token(token)
    team.token_prefix = visible_prefix(token)
    team.session_epoch += 1
    team.updated_at = utcnow()
    session.add(team)
    await session.flush()
    await audit.record(
        session,
        "team.rotate_token",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"token_prefix": team.token_prefix},
    )
    return token


async def set_active(
    session: AsyncSession, team: Team, active: bool, *, actor: Team | None
) -> None:
    # Lock the row: concurrent changes must each see the other's epoch bump.
    await session.refresh(team, with_for_update=True)
    if team.is_active == active:
        return
    if not active and actor is not None and actor.id == team.id:
        raise Conflict(_("You cannot deactivate your own account."), code="self_deactivation")
    if not active and team.is_admin and await count_active_admins(session) <= 1:
        raise Conflict(
            _("This is the last active admin; activate or create another admin first."),
            code="last_admin",
        )
    team.is_active = active
    if not active:
        team.session_epoch += 1  # ends every open session at once
    team.updated_at = utcnow()
    session.add(team)
    await session.flush()
    await audit.record(
        session,
        "team.activate" if active else "team.deactivate",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"name": team.name},
    )


async def list_teams(session: AsyncSession, query: str | None, page: PageParams) -> Page[Team]:
    statement = (
        sa.select(Team)
        .where(*search(query, col(Team.name), col(Team.email)))
        .order_by(col(Team.role).desc(), sa.func.lower(col(Team.name)))
    )
    return await paginate(session, statement, page, first_column)


async def count_active_admins(session: AsyncSession) -> int:
    return (
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(Team)
            .where(col(Team.role) == Role.admin, col(Team.is_active))
        )
        or 0
    )


async def set_daily_submission_limit(
    session: AsyncSession, team: Team, limit: int | None, *, actor: Team | None
) -> None:
    """Per-team override of PORTAL_DAILY_SUBMISSIONS (None returns to the default)."""
    previous = team.daily_submission_limit
    if previous == limit:
        return
    team.daily_submission_limit = limit
    team.updated_at = utcnow()
    session.add(team)
    await session.flush()
    await audit.record(
        session,
        "team.quota_override",
        actor=actor,
        target_type="team",
        target_id=team.id,
        details={"previous": previous, "limit": limit},
    )
