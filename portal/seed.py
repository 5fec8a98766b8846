"""First-start data for `portal dev`: one admin, demo teams, example solutions, and a
demo competition that is open now, so the public board fills within a minute."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from portal.competition import service as competition
from portal.competition.schemas import CompetitionUpdate
from portal.core.config import Settings
from portal.core.db import after_commit
from portal.core.redis import create_redis
from portal.core.storage import create_storage
from portal.core.time import utcnow
from portal.evaluation.queue import create_broker
from portal.submissions import service as submissions
from portal.teams import service as teams
from portal.teams.models import Role, Team
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
    admin = None
    for name, email, role in DEMO_TEAMS:
        team, token = await teams.create(
            session, TeamCreate(name=name, email=email, role=role), actor=None
        )
        issued.append(IssuedToken(team.name, team.email, team.role, token))
        admin = admin or (team if role == Role.admin else None)
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
    assert admin is not None
    await start_demo_competition(session, settings, admin, utcnow())
    return issued


def demo_competition(now: datetime) -> CompetitionUpdate:
    """Open a minute ago, frozen for its last day, ending in a week. The private seeds
    are drawn at random, so even this demo's final cannot be known in advance."""
    return CompetitionUpdate(
        name="Demo competition: the travelling salesman",
        starts_at=now - timedelta(minutes=1),
        freeze_at=now + timedelta(days=6),
        ends_at=now + timedelta(days=7),
        public_seeds=[1, 2, 3],
        private_seeds=sorted(secrets.randbelow(2**31) for _ in range(5)),
    )


async def start_demo_competition(
    session: AsyncSession, settings: Settings, admin: Team, now: datetime
) -> None:
    """Set the demo competition as its admin would; its public seeds queue every demo
    upload for scoring (the messages wait in Redis for the worker `portal dev` starts)."""
    assert settings.redis_url
    redis, broker = create_redis(settings.redis_url), create_broker(settings.redis_url)
    await competition.update(
        session,
        demo_competition(now),
        actor=admin,
        redis=redis,
        broker=broker,
        kit=settings.eval_kit,
        now=now,
    )

    async def close() -> None:
        # After the messages and the cache update that the change sends on commit.
        await redis.aclose()
        broker.close()

    after_commit(session, close)
