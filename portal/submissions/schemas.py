from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from portal.evaluation.schemas import RunView


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
    status: str = Field(description="Latest evaluation status, or 'not evaluated'")
    score: float | None = Field(description="Mean score in the latest finished evaluation")


class SubmissionDetail(SubmissionPublic):
    results: list[BatchResultPublic]


class SubmissionCreated(SubmissionPublic):
    quota: QuotaPublic


class FinalPickState(BaseModel):
    submission_id: int
    is_final: bool
    picks_used: int
    picks_limit: int
