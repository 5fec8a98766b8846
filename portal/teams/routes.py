from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from portal.auth.deps import AdminTeam, CurrentTeam
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep
from portal.core.pagination import MAX_ROW_ID, Page, PageDep
from portal.core.text import FreeText
from portal.leaderboard.refresh import refresh_after_commit
from portal.teams import service
from portal.teams.models import Team
from portal.teams.schemas import TeamCreate, TeamPublic, TeamUpdate, TeamWithToken

router = APIRouter(prefix="/api/v1/teams", tags=["teams"])


def public(team: Team) -> TeamPublic:
    return TeamPublic.model_validate(team)


def with_token(team: Team, token: str) -> TeamWithToken:
    return TeamWithToken(**public(team).model_dump(), api_token=token)


async def load_team(
    session: SessionDep, admin: AdminTeam, team_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
) -> Team:
    return await service.get(session, team_id)


AnyTeam = Annotated[Team, Depends(load_team)]


@router.get("/me", response_model=TeamPublic)
async def read_me(team: CurrentTeam) -> TeamPublic:
    return public(team)


@router.post("/me/rotate-token", response_model=TeamWithToken)
async def rotate_my_token(team: CurrentTeam, session: SessionDep) -> TeamWithToken:
    """A new token for the calling team; the old token and all sessions stop working."""
    token = await service.rotate_token(session, team, actor=team)
    return with_token(team, token)


@router.get("", response_model=Page[TeamPublic])
async def list_teams(
    admin: AdminTeam,
    session: SessionDep,
    page: PageDep,
    q: Annotated[
        FreeText | None, Query(max_length=100, description="name or email contains")
    ] = None,
) -> Page[TeamPublic]:
    return (await service.list_teams(session, q, page)).map(public)


@router.post("", response_model=TeamWithToken, status_code=201)
async def create_team(body: TeamCreate, admin: AdminTeam, session: SessionDep) -> TeamWithToken:
    """Create a team. The API token in the answer is shown only this once."""
    team, token = await service.create(session, body, actor=admin)
    return with_token(team, token)


@router.get("/{team_id}", response_model=TeamPublic)
async def read_team(team: AnyTeam) -> TeamPublic:
    return public(team)


@router.patch("/{team_id}", response_model=TeamPublic)
async def update_team(
    body: TeamUpdate, team: AnyTeam, admin: AdminTeam, session: SessionDep, broker: BrokerDep
) -> TeamPublic:
    """Activate/deactivate (deactivation ends the team's sessions and takes the team off
    the boards at once) or set a quota override."""
    if body.is_active is not None:
        await service.set_active(session, team, body.is_active, actor=admin)
        refresh_after_commit(session, broker)
    if "daily_submission_limit" in body.model_fields_set:
        await service.set_daily_submission_limit(
            session, team, body.daily_submission_limit, actor=admin
        )
    return public(team)


@router.post("/{team_id}/rotate-token", response_model=TeamWithToken)
async def rotate_token(team: AnyTeam, admin: AdminTeam, session: SessionDep) -> TeamWithToken:
    token = await service.rotate_token(session, team, actor=admin)
    return with_token(team, token)
