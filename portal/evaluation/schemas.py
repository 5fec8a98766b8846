from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from portal.core.i18n import gettext as _
from portal.core.text import NameText
from portal.evaluation.accounting import CostShown, TotalsShown, describe, describe_totals

MAX_SEEDS = 50


def _distinct_seeds_in_range(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise ValueError(_("each seed may appear only once"))
    if any(seed < 0 or seed >= 2**63 for seed in value):
        raise ValueError(_("seeds must be between 0 and 2^63-1"))
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
            raise ValueError(_("the batch needs a name"))
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
    duration_ms: int | None = Field(description="Wall time, from start to end")
    attempts: int
    reason: str | None
    exit_code: int | None
    # What the run cost, measured outside the program; null: not measured.
    cpu_user_ms: int | None
    cpu_system_ms: int | None
    peak_memory_bytes: int | None
    exit_signal: int | None = Field(description="The signal that ended it, if one did")
    output_bytes: int | None = Field(description="All it wrote to stdout and stderr")
    output_truncated: bool | None = Field(
        description="Whether the kept log is cut (its start and end are kept)"
    )
    limits: dict[str, Any] = Field(
        description="The limits it ran under: timeout_seconds, memory_mib, cpus, "
        "pids_limit, work_mib, log_cap_bytes, answer_cap_bytes"
    )


class RunView(RunPublic):
    """A run as the pages show it: with its batch, its log when that was asked for, and
    what it cost in words."""

    batch_id: int
    log: str | None = None

    @property
    def cost(self) -> CostShown:
        return describe(self)


class BatchTotals(BaseModel):
    """What a batch's ended runs cost together (over the runs that were measured)."""

    runs_ended: int
    runs_measured: int = Field(description="Runs with CPU time measured")
    cpu_ms: int = Field(description="CPU time, user and system, summed")
    wall_ms: int = Field(description="Wall time summed")
    peak_memory_bytes: int | None = Field(description="The largest peak of any run")
    memory_mib: float | None = Field(description="The largest memory limit a run ran under")
    output_bytes: int = Field(description="Output summed")
    runs_cut: int = Field(description="Runs whose kept log is cut")

    @property
    def shown(self) -> TotalsShown:
        return describe_totals(
            **self.model_dump(exclude={"runs_ended", "runs_measured"}),
        )


class BatchDetail(BatchPublic):
    runs: list[RunPublic]
    totals: BatchTotals
