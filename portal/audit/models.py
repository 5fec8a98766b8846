from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from portal.core.db import jsonb, timestamptz


class AuditLog(SQLModel, table=True):
    """Append-only: a database trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_action_created_at", "action", "created_at"),)

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True))
    created_at: datetime | None = Field(default=None, sa_column=timestamptz(index=True))
    actor_team_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=True, index=True),
    )
    actor_role: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    target_type: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    target_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    ip: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb())
