from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_validator

from portal.core.text import NameText

MODEL_NAME_MAX_LENGTH = 120
MAX_MODELS = 100  # in one team's allowlist


def _model_name(value: str) -> str:
    # Checked here, after the text checks, not with StringConstraints: beside NameText's
    # validator those measured the name before stripping it, so "  " was kept as "".
    name = value.strip()
    if not name:
        raise ValueError("must name a model (it is blank)")
    if len(name) > MODEL_NAME_MAX_LENGTH:
        raise ValueError(
            f"must have at most {MODEL_NAME_MAX_LENGTH} characters (it has {len(name)})"
        )
    return name


ModelName = Annotated[NameText, AfterValidator(_model_name)]


class BudgetsPublic(BaseModel):
    """The budgets in force for a team."""

    model_config = ConfigDict(from_attributes=True)

    requests_per_minute: int
    tokens_per_minute: int
    tokens_per_day: int = Field(
        description="prompt + completion tokens per day, reset at midnight in PORTAL_TIMEZONE"
    )
    max_parallel: int = Field(description="calls in flight at once")
    models: list[str] | None = Field(description="the models the team may call; null: every model")


class BudgetUsePublic(BaseModel):
    """How much of each budget the team is using right now."""

    requests_this_minute: int
    tokens_this_minute: int
    tokens_today: int
    tokens_owed: int = Field(
        description="tokens spent beyond earlier minutes' budget (prompts longer than their "
        "estimate), charged to the minutes to come: each starts with up to its whole budget"
    )
    in_flight: int
    minute_resets_in_seconds: int
    day_resets_in_seconds: int


class UsageTotals(BaseModel):
    calls: int
    allowed: int
    refused: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    exceeded_rate: float = Field(description="refused / all calls in the window")
    refused_by: dict[str, int] = Field(
        description="refused calls per budget: requests, tokens, parallel, model"
    )
    exceeded_rate_by: dict[str, float] = Field(description="per budget: refused / all calls")
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
    budgets: BudgetsPublic
    totals: UsageTotals


class UsageReportPublic(BaseModel):
    window: str
    since: datetime
    until: datetime
    step_minutes: int
    team_id: int | None = Field(description="null: every team (admins only)")
    requests_per_minute: int | None = Field(description="the team's limit; null for all teams")
    budgets: BudgetsPublic | None = Field(description="the team's budgets; null for all teams")
    in_use: BudgetUsePublic | None = Field(
        description="the team's use of each budget right now; null for all teams"
    )
    totals: UsageTotals
    series: list[UsageStep]
    teams: list[TeamUsagePublic] = Field(description="per-team totals (all-teams view only)")


class RateLimitUpdate(BaseModel):
    """A team's own budgets; each null (or left out) returns to its PORTAL_LLM_* default.

    Counts are JSON whole numbers only (strict): lax parsing read `true` as 1 and
    "1_000" as 1000, a limit nobody meant to set.
    """

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: StrictInt | None = Field(
        default=None, ge=0, le=100_000, description="calls per minute; null: PORTAL_LLM_RPM"
    )
    tokens_per_minute: StrictInt | None = Field(
        default=None, ge=0, le=1_000_000_000, description="null: PORTAL_LLM_TOKENS_PER_MINUTE"
    )
    tokens_per_day: StrictInt | None = Field(
        default=None, ge=0, le=1_000_000_000_000, description="null: PORTAL_LLM_TOKENS_PER_DAY"
    )
    max_parallel: StrictInt | None = Field(
        default=None, ge=0, le=10_000, description="calls in flight; null: PORTAL_LLM_MAX_PARALLEL"
    )
    models: list[ModelName] | None = Field(
        default=None,
        max_length=MAX_MODELS,
        description="model names the team may call ([]: none); null: PORTAL_LLM_MODELS",
    )

    @field_validator("models")
    @classmethod
    def _each_once(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None


class RateLimitPublic(BudgetsPublic):
    team_id: int
    overridden: list[str] = Field(description="the budgets set for this team, not defaults")
    is_override: bool = Field(description="true when any budget is set for this team")
