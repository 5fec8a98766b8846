from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class UsageTotals(BaseModel):
    calls: int
    allowed: int
    refused: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    exceeded_rate: float = Field(description="refused / all calls in the window")
    mean_latency_ms: float | None


class UsageStep(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    start: datetime
    calls: int
    refused: int
    failed: int
    prompt_tokens: int
    completion_tokens: int


class TeamUsagePublic(BaseModel):
    team_id: int
    team_name: str
    requests_per_minute: int
    totals: UsageTotals


class UsageReportPublic(BaseModel):
    window: str
    since: datetime
    until: datetime
    step_minutes: int
    team_id: int | None = Field(description="null: every team (admins only)")
    requests_per_minute: int | None = Field(description="the team's limit; null for all teams")
    totals: UsageTotals
    series: list[UsageStep]
    teams: list[TeamUsagePublic] = Field(description="per-team totals (all-teams view only)")


class RateLimitUpdate(BaseModel):
    requests_per_minute: int | None = Field(
        ge=0, le=100_000, description="calls per minute; null returns to PORTAL_LLM_RPM"
    )


class RateLimitPublic(BaseModel):
    team_id: int
    requests_per_minute: int
    is_override: bool
