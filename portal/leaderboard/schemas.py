from pydantic import BaseModel, ConfigDict

from portal.core.pagination import Page


class BoardRowPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rank: int | None
    team_id: int
    team_name: str
    score: float | None
    submission_id: int | None
    runs_done: int
    runs_total: int
    change: int | None


class LeaderboardPublic(Page[BoardRowPublic]):
    batch_id: int | None
    batch_name: str | None
    batch_status: str | None
    runs_done: int
    runs_total: int
    version: int


class HistoryEntry(BaseModel):
    """One batch on a team's history page."""

    model_config = ConfigDict(from_attributes=True)

    batch_id: int
    batch_name: str
    score: float | None
    rank: int | None
