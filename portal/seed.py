"""First-start data for `portal dev`: one admin and three demo teams."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.teams import service as teams
from portal.teams.models import Role
from portal.teams.schemas import TeamCreate

DEMO_TEAMS = [
    ("Organizers", "admin@example.org", Role.admin),
    ("Team Alpha", "alpha@example.org", Role.participant),
    ("Team Beta", "beta@example.org", Role.participant),
    ("Team Gamma", "gamma@example.org", Role.participant),
]


@dataclass(frozen=True)
class IssuedToken:
    name: str
    email: str
    role: str
    token: str


async def seed_demo_data(session: AsyncSession) -> list[IssuedToken]:
    """Create the demo accounts if the portal has no team yet; returns their tokens."""
    if (await teams.list_teams(session, None, teams.PageParams(page=1, size=1))).total:
        return []
    issued = []
    for name, email, role in DEMO_TEAMS:
        team, token = await teams.create(
            session, TeamCreate(name=name, email=email, role=role), actor=None
        )
        issued.append(IssuedToken(team.name, team.email, team.role, token))
    return issued
