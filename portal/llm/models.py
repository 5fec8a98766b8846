from datetime import datetime

import sqlalchemy as sa
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
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True))
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())
    team_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=False))
    model: str = Field(default="", sa_column=sa.Column(sa.String(120), nullable=False))
    prompt_tokens: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    completion_tokens: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    latency_ms: float = Field(default=0, sa_column=sa.Column(sa.Float, nullable=False))
    status_code: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    outcome: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    source: str = Field(default="dev", sa_column=sa.Column(sa.String(10), nullable=False))
    batch_submission_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("batch_submission.id"), nullable=True),
    )
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))


class LlmUsageRateLimit(SQLModel, table=True):
    """Per-team override of PORTAL_LLM_RPM."""

    __tablename__ = "llm_usage_rate_limit"
    __table_args__ = (sa.CheckConstraint("requests_per_minute >= 0", name="rpm_not_negative"),)

    team_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), primary_key=True)
    )
    requests_per_minute: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=timestamptz())
