from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from portal.core.db import timestamptz


class LlmUsageLog(SQLModel, table=True):
    """Every gateway call, allowed, refused or failed."""

    __tablename__ = "llm_usage_log"
    __table_args__ = (
        sa.Index("ix_llm_usage_log_team_id_created_at", "team_id", "created_at"),
        # Every team's last hour (the System page): the log is written in time order.
        sa.Index("ix_llm_usage_log_created_at_brin", "created_at", postgresql_using="brin"),
        sa.CheckConstraint("source IN ('dev', 'eval')", name="source_known"),
        sa.CheckConstraint("outcome IN ('allowed', 'refused', 'failed')", name="outcome_known"),
        sa.CheckConstraint(
            "refusal IN ('requests', 'tokens', 'parallel', 'model')", name="refusal_known"
        ),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True))
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())
    team_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=False))
    # The model asked for, and the one that answered (the upstream's `model` field: an
    # alias resolves to a dated version, a router picks a backend).
    model: str = Field(default="", sa_column=sa.Column(sa.String(120), nullable=False))
    answered_model: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    prompt_tokens: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    completion_tokens: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    latency_ms: float = Field(default=0, sa_column=sa.Column(sa.Float, nullable=False))
    status_code: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    outcome: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    # Which budget refused the call (outcome 'refused'): requests, tokens, parallel, model.
    refusal: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    source: str = Field(default="dev", sa_column=sa.Column(sa.String(10), nullable=False))
    batch_submission_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("batch_submission.id"), nullable=True),
    )
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))


class LlmUsageRateLimit(SQLModel, table=True):
    """A team's own LLM budgets; each NULL column means the PORTAL_LLM_* default."""

    __tablename__ = "llm_usage_rate_limit"
    __table_args__ = (
        sa.CheckConstraint("requests_per_minute >= 0", name="rpm_not_negative"),
        sa.CheckConstraint("tokens_per_minute >= 0", name="tpm_not_negative"),
        sa.CheckConstraint("tokens_per_day >= 0", name="tpd_not_negative"),
        sa.CheckConstraint("max_parallel >= 0", name="parallel_not_negative"),
    )

    team_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), primary_key=True)
    )
    requests_per_minute: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    tokens_per_minute: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    tokens_per_day: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    max_parallel: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    # The models the team may call; NULL: the default (PORTAL_LLM_MODELS), [] : none.
    models: list[str] | None = Field(
        default=None, sa_column=sa.Column(postgresql.ARRAY(sa.String(120)))
    )
    updated_at: datetime | None = Field(default=None, sa_column=timestamptz())
