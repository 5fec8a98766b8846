from typing import Annotated

from fastapi import Depends

from portal.competition import service
from portal.competition.phases import UPLOADS_OPEN, CompetitionState
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, RedisDep


async def current_competition(session: SessionDep, redis: RedisDep) -> CompetitionState:
    return await service.current(session, redis)


# The competition's settings and batches, read once per request (Redis, then database).
CompetitionDep = Annotated[CompetitionState, Depends(current_competition)]


async def picks_are_open(competition: CompetitionDep, clock: ClockDep) -> bool:
    return competition.phase(clock()) in UPLOADS_OPEN


# Final picks change only while uploads are open; afterwards they are what the final runs.
PicksOpenDep = Annotated[bool, Depends(picks_are_open)]
