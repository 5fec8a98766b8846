"""The competition's JSON API: public settings and phase; admin changes, the final
evaluation and the reveal (each audited)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import AdminTeam
from portal.competition import service
from portal.competition.deps import CompetitionActions, CompetitionActionsDep, CompetitionDep
from portal.competition.models import Competition
from portal.competition.phases import CompetitionState
from portal.competition.schemas import CompetitionAdmin, CompetitionPublic, CompetitionUpdate
from portal.core.config import Settings
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, SettingsDep
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
    body: CompetitionUpdate, admin: AdminTeam, actions: CompetitionActionsDep
) -> CompetitionAdmin:
    """Change any of name, starts_at, freeze_at (null: no freeze), ends_at, public_seeds,
    private_seeds. New public seeds score every upload again on them."""
    competition = await actions.update(body, admin)
    return await _admin_answer(actions, competition)


@router.post("/final", response_model=CompetitionAdmin, status_code=202)
async def start_final(admin: AdminTeam, actions: CompetitionActionsDep) -> CompetitionAdmin:
    """After the end: run each team's final picks (else its best public submissions, up to
    the pick limit) on the private seeds."""
    await actions.start_final(admin)
    return await _admin_answer(actions, await service.load(actions.session))


@router.post("/reveal", response_model=CompetitionAdmin)
async def reveal(admin: AdminTeam, actions: CompetitionActionsDep) -> CompetitionAdmin:
    """Once the final evaluation has finished: make the final board public."""
    return await _admin_answer(actions, await actions.reveal(admin))


async def _admin_answer(actions: CompetitionActions, competition: Competition) -> CompetitionAdmin:
    state = CompetitionState.model_validate(competition)
    return await admin_view(actions.session, state, actions.settings, actions.now)
