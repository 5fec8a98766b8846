"""First-start data for `portal dev`: one admin, three demo teams, example solutions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from portal.core.config import Settings
from portal.core.storage import create_storage
from portal.core.time import utcnow
from portal.submissions import service as submissions
from portal.teams import service as teams
from portal.teams.models import Role
from portal.teams.schemas import TeamCreate

DEMO_TEAMS = [
    ("Organizers", "admin@example.org", Role.admin),
    ("Team Alpha", "alpha@example.org", Role.participant),
    ("Team Beta", "beta@example.org", Role.participant),
    ("Team Gamma", "gamma@example.org", Role.participant),
    ("Team Delta", "delta@example.org", Role.participant),
]


@dataclass(frozen=True)
class IssuedToken:
    name: str
    email: str
    role: str
    token: str


# Example solutions of clearly different quality, so the first batch shows a real board.
DEMO_SUBMISSIONS = {
    "alpha@example.org": "tsp_two_opt.py",
    "beta@example.org": "tsp_nearest_neighbour.py",
    "gamma@example.org": "tsp_input_order.py",
    # Calls the LLM gateway from inside its evaluation run (examples/tsp_llm_hint.py).
    "delta@example.org": "tsp_llm_hint.py",
}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


async def seed_demo_data(session: AsyncSession, settings: Settings) -> list[IssuedToken]:
    """Create the demo accounts and their example submissions if the portal is empty."""
    if (await teams.list_teams(session, None, teams.PageParams(page=1, size=1))).total:
        return []
    issued = []
    storage = create_storage(settings)
    storage.ensure_ready()
    for name, email, role in DEMO_TEAMS:
        team, token = await teams.create(
            session, TeamCreate(name=name, email=email, role=role), actor=None
        )
        issued.append(IssuedToken(team.name, team.email, team.role, token))
        example = DEMO_SUBMISSIONS.get(email)
        if example:
            await submissions.upload(
                session,
                team=team,
                filename=example,
                content=(EXAMPLES_DIR / example).read_bytes(),
                note="example solution",
                settings=settings,
                storage=storage,
                now=utcnow(),
            )
    return issued
