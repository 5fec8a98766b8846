from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from portal.core.db import timestamptz


class Submission(SQLModel, table=True):
    __tablename__ = "submission"
    __table_args__ = (
        # A team cannot submit the same file twice; other teams may.
        sa.UniqueConstraint("team_id", "sha256"),
        sa.Index("ix_submission_team_id_created_at", "team_id", "created_at"),
        sa.Index("ix_submission_final", "team_id", postgresql_where=sa.text("is_final")),
        sa.CheckConstraint("size_bytes > 0", name="size_positive"),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, primary_key=True)
    team_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    size_bytes: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    # The uploader's file name, kept only as display text; storage uses the sha256.
    filename: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    note: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False))
    storage_key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    is_final: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())


class SubmissionQuota(SQLModel, table=True):
    """Uploads accepted per team per competition day (in PORTAL_TIMEZONE)."""

    __tablename__ = "submission_quota"
    __table_args__ = (sa.CheckConstraint("used >= 0", name="used_not_negative"),)

    team_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), primary_key=True)
    )
    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    used: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
