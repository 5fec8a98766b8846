from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from portal.core.text import NameText

MAX_SEEDS = 50


def _distinct_seeds_in_range(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise ValueError("each seed may appear only once")
    if any(seed < 0 or seed >= 2**63 for seed in value):
        raise ValueError("seeds must be between 0 and 2^63-1")
    return value


# Fixed seeds for a batch or the competition: distinct, 0 to 2^63-1, at most MAX_SEEDS.
Seeds = Annotated[list[int], Field(max_length=MAX_SEEDS), AfterValidator(_distinct_seeds_in_range)]


class BatchCreate(BaseModel):
    name: NameText = Field(min_length=1, max_length=120)
    seeds: Seeds = Field(
        min_length=1, description="Fixed seeds; each submission runs once per seed"
    )
    selection: Literal["final_picks", "unevaluated"] = Field(
        description="final_picks: each team's picks, else its latest submission; "
        "unevaluated: every submission never evaluated"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("the batch needs a name")
        return value


class BatchProgress(BaseModel):
    total: int
    done: int
    counts: dict[str, int]
    percent: int


class BatchPublic(BaseModel):
    id: int
    name: str
    seeds: list[int]
    selection: str
    kind: str
    kit: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: BatchProgress


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    team_id: int
    team_name: str
    submission_id: int
    seed: int
    status: str
    score: float | None
    duration_ms: int | None
    attempts: int
    reason: str | None


class RunView(RunPublic):
    """A run as the pages show it: with its batch, and its log when that was asked for."""

    batch_id: int
    log: str | None = None


class BatchDetail(BatchPublic):
    runs: list[RunPublic]
