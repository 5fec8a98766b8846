"""The competition's JSON API: public settings and phase; admin changes, the final
evaluation and the reveal (each audited)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import AdminTeam
from portal.competition import service
from portal.competition.deps import CompetitionDep
from portal.competition.phases import CompetitionState
from portal.competition.schemas import CompetitionAdmin, CompetitionPublic, CompetitionUpdate
from portal.core.config import Settings
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep, ClockDep, RedisDep, SettingsDep
from portal.evaluation import service as evaluation

router = APIRouter(prefix="/api/v1/competition", tags=["competition"])


def public_view(state: CompetitionState, settings: Settings, now: datetime) -> CompetitionPublic:
    return CompetitionPublic(
        name=state.name,
        phase=state.phase(now),
        starts_at=state.starts_at,
        freeze_at=state.freeze_at,
        ends_at=state.ends_at,
        public_seeds=state.public_seeds,
        final_picks=settings.final_picks,
    )


async def admin_view(
    session: AsyncSession, state: CompetitionState, settings: Settings, now: datetime
) -> CompetitionAdmin:
    progress = (
        await evaluation.progress(session, state.final_batch_id) if state.final_batch_id else None
    )
    return CompetitionAdmin(
        **public_view(state, settings, now).model_dump(),
        private_seeds=state.private_seeds,
        public_batch_id=state.public_batch_id,
        final_batch_id=state.final_batch_id,
        final_started_at=state.final_started_at,
        revealed_at=state.revealed_at,
        final_progress=progress,
    )


@router.get("", response_model=CompetitionPublic)
async def read_competition(
    competition: CompetitionDep, settings: SettingsDep, clock: ClockDep
) -> CompetitionPublic:
    """Public: name, phase, window, public seeds and the pick limit (never private seeds)."""
    return public_view(competition, settings, clock())


@router.get("/admin", response_model=CompetitionAdmin)
async def read_competition_admin(
    admin: AdminTeam,
    session: SessionDep,
    competition: CompetitionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> CompetitionAdmin:
    """Admin: everything, with the private seeds and the final evaluation's progress."""
    return await admin_view(session, competition, settings, clock())


@router.patch("", response_model=CompetitionAdmin)
async def update_competition(
    body: CompetitionUpdate,
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    broker: BrokerDep,
    clock: ClockDep,
) -> CompetitionAdmin:
    """Change any of name, starts_at, freeze_at (null: no freeze), ends_at, public_seeds,
    private_seeds. New public seeds score every upload again on them."""
    now = clock()
    competition = await service.update(
        session, body, actor=admin, redis=redis, broker=broker, kit=settings.eval_kit, now=now
    )
    return await admin_view(session, CompetitionState.model_validate(competition), settings, now)


@router.post("/final", response_model=CompetitionAdmin, status_code=202)
async def start_final(
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    broker: BrokerDep,
    clock: ClockDep,
) -> CompetitionAdmin:
    """After the end: run each team's final picks (else its best public submissions, up to
    the pick limit) on the private seeds."""
    now = clock()
    await service.start_final(
        session,
        actor=admin,
        redis=redis,
        broker=broker,
        kit=settings.eval_kit,
        pick_limit=settings.final_picks,
        now=now,
    )
    competition = await service.load(session)
    return await admin_view(session, CompetitionState.model_validate(competition), settings, now)


@router.post("/reveal", response_model=CompetitionAdmin)
async def reveal(
    admin: AdminTeam,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    broker: BrokerDep,
    clock: ClockDep,
) -> CompetitionAdmin:
    """Once the final evaluation has finished: make the final board public."""
    now = clock()
    competition = await service.reveal(session, actor=admin, redis=redis, broker=broker, now=now)
    return await admin_view(session, CompetitionState.model_validate(competition), settings, now)
