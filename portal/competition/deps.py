from datetime import datetime
from typing import Annotated

from fastapi import Depends

from portal.competition import service
from portal.competition.models import Competition
from portal.competition.phases import UPLOADS_OPEN, CompetitionState
from portal.competition.schemas import CompetitionUpdate
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep, ClockDep, RedisDep, SettingsDep
from portal.evaluation.models import EvaluationBatch
from portal.teams.models import Team


async def current_competition(session: SessionDep, redis: RedisDep) -> CompetitionState:
    return await service.current(session, redis)


# The competition's settings and batches, read once per request (Redis, then database).
CompetitionDep = Annotated[CompetitionState, Depends(current_competition)]


async def picks_are_open(competition: CompetitionDep, clock: ClockDep) -> bool:
    return competition.phase(clock()) in UPLOADS_OPEN


# Final picks change only while uploads are open; afterwards they are what the final runs.
PicksOpenDep = Annotated[bool, Depends(picks_are_open)]


class CompetitionActions:
    """The admin's three actions with what they need from the request (the session,
    Redis and the broker for after the commit, the settings, the clock), so the API and
    the admin page call them the same way: `actions.update(data, admin)`."""

    def __init__(
        self,
        session: SessionDep,
        settings: SettingsDep,
        redis: RedisDep,
        broker: BrokerDep,
        clock: ClockDep,
    ) -> None:
        self.session, self.settings, self.redis, self.broker = session, settings, redis, broker
        self.now: datetime = clock()

    async def update(self, data: CompetitionUpdate, actor: Team) -> Competition:
        return await service.update(
            self.session,
            data,
            actor=actor,
            redis=self.redis,
            broker=self.broker,
            kit=self.settings.eval_kit,
            now=self.now,
        )

    async def start_final(self, actor: Team) -> EvaluationBatch:
        return await service.start_final(
            self.session,
            actor=actor,
            redis=self.redis,
            broker=self.broker,
            kit=self.settings.eval_kit,
            pick_limit=self.settings.final_picks,
            now=self.now,
        )

    async def reveal(self, actor: Team) -> Competition:
        return await service.reveal(
            self.session, actor=actor, redis=self.redis, broker=self.broker, now=self.now
        )


CompetitionActionsDep = Annotated[CompetitionActions, Depends()]
