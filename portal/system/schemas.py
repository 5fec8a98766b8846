"""What the System page shows, as the JSON API answers it (the page renders the same)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class QueuedRuns(BaseModel):
    public: int = Field(description="runs of uploads' public scores waiting for a worker")
    final: int = Field(description="runs of the final evaluation waiting")
    adhoc: int = Field(description="runs of admins' own batches waiting")

    @property
    def total(self) -> int:
        return self.public + self.final + self.adhoc


class QueueFigures(BaseModel):
    queued: QueuedRuns
    queued_total: int
    running: int
    oldest_queued_at: datetime | None = Field(description="null: nothing is queued")
    oldest_queued_seconds: float | None


class RunNow(BaseModel):
    """A run a worker holds at this moment."""

    run_id: int
    batch_id: int
    batch_name: str
    batch_kind: str
    team_name: str
    seed: int
    worker_id: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None


class WorkerPublic(BaseModel):
    worker_id: str
    host: str
    pid: int
    threads: int
    runner: str
    started_at: datetime
    beat_at: datetime
    seconds_since_beat: float
    alive: bool = Field(description="beat within PORTAL_EVAL_STALE_AFTER_SECONDS")
    running: list[RunNow]


class FinishedStep(BaseModel):
    start: datetime
    counts: dict[str, int] = Field(description="runs that ended in this minute, by status")


class FinishedRuns(BaseModel):
    since: datetime
    step_minutes: int
    totals: dict[str, int] = Field(description="by status, cancelled runs left out")
    series: list[FinishedStep]


class Failure(BaseModel):
    run_id: int
    batch_id: int
    batch_name: str
    batch_kind: str
    team_name: str
    submission_id: int
    seed: int
    status: str
    reason: str | None
    finished_at: datetime | None


class GatewayStep(BaseModel):
    start: datetime
    calls: int
    refused: int


class GatewayRefusals(BaseModel):
    calls: int
    refused: int
    exceeded_rate: float = Field(description="refused / all calls in the last hour")
    refused_last_minute: int
    refused_by: dict[str, int] = Field(
        description="refused calls per budget: requests, tokens, parallel, model"
    )
    series: list[GatewayStep]


class UploadRefusals(BaseModel):
    refused: int
    by_reason: dict[str, int] = Field(description="the error code of each refusal")


class Refusals(BaseModel):
    since: datetime
    llm: GatewayRefusals
    uploads: UploadRefusals


class Inventory(BaseModel):
    participants: int
    admins: int
    submissions: int
    submission_bytes: int
    batches: int
    runs: int
    database_bytes: int


class SystemReport(BaseModel):
    now: datetime
    stale_after_seconds: float
    queue: QueueFigures
    workers: list[WorkerPublic]
    workers_alive: int
    workers_problem: str | None = Field(
        description="why the worker list could not be read; null when it was"
    )
    unattended: list[RunNow] = Field(
        description="runs marked running whose worker is not alive: the watchdog re-queues "
        "them once their heartbeat is stale"
    )
    finished: FinishedRuns
    failures: list[Failure]
    refusals: Refusals
    inventory: Inventory | None = Field(description="left out of the page's live refresh")
