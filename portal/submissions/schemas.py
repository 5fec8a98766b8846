from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from portal.evaluation.schemas import RunPublic, RunView


class QuotaPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    used: int
    limit: int
    remaining: int
    resets_at: datetime = Field(description="Next reset: midnight in PORTAL_TIMEZONE")


class BatchResultPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    batch_id: int
    batch_name: str
    status: str
    mean_score: float | None
    reason: str | None
    finished_at: datetime | None


class BatchResultWithRuns(BatchResultPublic):
    """One public evaluation's result with its runs: seed by seed, what each scored and
    what it cost (the submission's JSON detail)."""

    runs: list[RunPublic]


class BatchResultRuns(BatchResultPublic):
    """One batch's result on the submission's page, with the runs behind it."""

    runs: list[RunView]


class SubmissionPublic(BaseModel):
    id: int
    filename: str = Field(description="The uploaded file's name, display text only")
    note: str
    sha256: str
    size_bytes: int
    created_at: datetime
    is_final: bool
    public_status: str = Field(
        description="The evaluation on the public seeds: queued, running, scored, failed, "
        "timeout, memory_limit, disk_limit, invalid_answer, cancelled, or 'not evaluated' "
        "(no public seeds are set yet)"
    )
    public_score: float | None = Field(
        description="Mean score over the public seeds, once every public run has ended"
    )
    status: str = Field(description="Same as public_status (kept for older clients)")
    score: float | None = Field(description="Same as public_score (kept for older clients)")


class SubmissionDetail(SubmissionPublic):
    results: list[BatchResultWithRuns] = Field(
        description="The public evaluations only (the final evaluation stays private)"
    )


class SubmissionCreated(SubmissionPublic):
    quota: QuotaPublic


class FinalPickState(BaseModel):
    submission_id: int
    is_final: bool
    picks_used: int
    picks_limit: int
