from datetime import datetime

from pydantic import BaseModel, ConfigDict

from portal.competition.models import Phase
from portal.core.pagination import Page
from portal.leaderboard.standings import Board


class StandingRowPublic(BaseModel):
    """One team on a competition board."""

    model_config = ConfigDict(from_attributes=True)

    rank: int | None
    team_id: int
    team_name: str
    score: float | None
    submission_id: int | None
    submitted_at: datetime | None
    entries: int
    last_upload_at: datetime | None
    # On the final board: the team's rank and score on the board the room last saw
    # (the frozen one if there was a freeze): the shake-up.
    public_rank: int | None
    public_score: float | None


class FinalProgress(BaseModel):
    done: int
    total: int


class CompetitionBoardPublic(Page[StandingRowPublic]):
    board: Board
    phase: Phase
    frozen_at: datetime | None
    competition: str
    version: int
    # The final evaluation's runs, on the final board once it has started.
    final_progress: FinalProgress | None


class BoardRowPublic(BaseModel):
    """One team in a batch's own ranking (admin view)."""

    model_config = ConfigDict(from_attributes=True)

    rank: int | None
    team_id: int
    team_name: str
    score: float | None
    submission_id: int | None
    runs_done: int
    runs_total: int
    change: int | None


class BatchBoardPublic(Page[BoardRowPublic]):
    batch_id: int | None
    batch_name: str | None
    batch_status: str | None
    runs_done: int
    runs_total: int
    version: int
