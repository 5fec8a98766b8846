"""Small factory helpers: explicit data in each test instead of hidden fixtures."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.core.db import commit
from portal.teams import service as teams_service
from portal.teams.models import Role, Team
from portal.teams.schemas import TeamCreate

_sequence = itertools.count(1)


@dataclass
class IssuedTeam:
    team: Team
    token: str

    @property
    def id(self) -> int:
        return self.team.id

    @property
    def email(self) -> str:
        return self.team.email

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class TeamFactory:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def create(
        self, *, name: str | None = None, email: str | None = None, role: Role = Role.participant
    ) -> IssuedTeam:
        number = next(_sequence)
        data = TeamCreate(
            name=name or f"Team {number}",
            email=email or f"team{number}@example.org",
            role=role,
        )
        async with self.sessionmaker() as session:
            team, token = await teams_service.create(session, data, actor=None)
            await commit(session)
        return IssuedTeam(team, token)

    async def admin(self, **overrides) -> IssuedTeam:
        return await self.create(role=Role.admin, **overrides)


async def csrf_from_login_page(client: httpx.AsyncClient) -> str:
    """Load the login page (which sets the anonymous session cookie); return its token."""
    page = await client.get("/login")
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


async def browser_login(client: httpx.AsyncClient, issued: IssuedTeam) -> str:
    """Log in through the HTML form like a browser; returns the session's CSRF token."""
    csrf = await csrf_from_login_page(client)
    response = await client.post(
        "/login",
        data={"email": issued.email, "api_token": issued.token, "csrf_token": csrf},
    )
    assert response.status_code == 303, response.text
    me = await client.get("/dashboard" if not issued.team.is_admin else "/admin/teams")
    marker = 'name="csrf_token" value="'
    start = me.text.index(marker) + len(marker)
    return me.text[start : me.text.index('"', start)]
