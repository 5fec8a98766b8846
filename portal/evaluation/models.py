from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from portal.core.db import jsonb, timestamptz


class BatchStatus(StrEnum):
    draft = "draft"
    running = "running"
    finished = "finished"
    cancelled = "cancelled"


class BatchKind(StrEnum):
    adhoc = "adhoc"  # an admin's batch: ad-hoc runs and re-runs, ranked for admins only
    public = "public"  # the competition's: every upload, on the public seeds
    final = "final"  # the competition's final evaluation: picks on the private seeds


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    scored = "scored"
    failed = "failed"
    timeout = "timeout"
    memory_limit = "memory_limit"
    disk_limit = "disk_limit"
    invalid_answer = "invalid_answer"
    cancelled = "cancelled"


def _known(column: str, enum: type[StrEnum]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


class EvaluationBatch(SQLModel, table=True):
    __tablename__ = "evaluation_batch"
    __table_args__ = (
        sa.CheckConstraint(_known("status", BatchStatus), name="status_known"),
        sa.CheckConstraint(
            "selection IN ('final_picks', 'unevaluated', 'uploads')", name="selection_known"
        ),
        sa.CheckConstraint(_known("kind", BatchKind), name="kind_known"),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    seeds: list[int] = Field(
        default_factory=list, sa_column=sa.Column(postgresql.ARRAY(sa.BigInteger), nullable=False)
    )
    selection: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    kind: str = Field(
        default=BatchKind.adhoc,
        sa_column=sa.Column(sa.String(10), nullable=False, server_default=BatchKind.adhoc),
    )
    # The kit that generated inputs and scored answers (PORTAL_EVAL_KIT at creation).
    kit: str = Field(
        default="", sa_column=sa.Column(sa.String(200), nullable=False, server_default="")
    )
    status: str = Field(
        default=BatchStatus.draft, sa_column=sa.Column(sa.String(20), nullable=False)
    )
    created_by_team_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=True)
    )
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())
    started_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )


class BatchSubmission(SQLModel, table=True):
    """One submission inside one batch, with its per-seed results."""

    __tablename__ = "batch_submission"
    __table_args__ = (
        sa.UniqueConstraint("batch_id", "submission_id"),
        sa.CheckConstraint(_known("status", RunStatus), name="status_known"),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, primary_key=True)
    batch_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=False, index=True
        )
    )
    submission_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("submission.id"), nullable=False, index=True)
    )
    team_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("team.id"), nullable=False))
    status: str = Field(
        default=RunStatus.queued, sa_column=sa.Column(sa.String(20), nullable=False)
    )
    # {"<seed>": {"status", "score", "reason", "duration_ms", "exit_code", and what the run
    # cost (runs.COST_FIELDS)}}, written when the last of its runs ends (the runs themselves, with attempts and heartbeats, are EvaluationRun).
    seed_results: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb())
    mean_score: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())
    started_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )


class EvaluationRun(SQLModel, table=True):
    """One (submission, seed) inside a batch: the unit a worker claims and runs.

    Unique per (batch_submission, seed), so re-running a failed run reuses its row and a
    batch can never hold the same run twice.
    """

    __tablename__ = "evaluation_run"
    __table_args__ = (
        sa.UniqueConstraint("batch_submission_id", "seed"),
        sa.CheckConstraint(_known("status", RunStatus), name="status_known"),
        sa.Index("ix_evaluation_run_status_heartbeat_at", "status", "heartbeat_at"),
        sa.Index("ix_evaluation_run_batch_id_status", "batch_id", "status"),
        # The System page: the queue's oldest run and its size, then what finished lately.
        sa.Index(
            "ix_evaluation_run_queued",
            "queued_at",
            "batch_id",
            postgresql_where=sa.text("status = 'queued'"),
        ),
        sa.Index("ix_evaluation_run_status_finished_at", "status", "finished_at"),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, primary_key=True)
    batch_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=False)
    )
    batch_submission_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("batch_submission.id"), nullable=False)
    )
    seed: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    # Order in which runs are queued: round-robin across teams.
    queue_position: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    status: str = Field(
        default=RunStatus.queued, sa_column=sa.Column(sa.String(20), nullable=False)
    )
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    worker_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    heartbeat_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    score: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb())
    exit_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    duration_ms: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    log: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    # What the run cost, from its container's cgroup (None: not measured, e.g. a run the
    # worker itself had to kill, or one recorded before accounting existed).
    cpu_user_ms: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    cpu_system_ms: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    peak_memory_bytes: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, nullable=True)
    )
    exit_signal: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    # Everything the program wrote to stdout and stderr, and whether the kept log is cut.
    output_bytes: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, nullable=True)
    )
    output_truncated: bool | None = Field(
        default=None, sa_column=sa.Column(sa.Boolean, nullable=True)
    )
    # The limits it ran under: {"timeout_seconds", "memory_mib", "cpus", "log_cap_bytes", ...}.
    limits: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb())
    # When it was last asked for: queued by an upload, a batch's start or an organizer's
    # re-run. A retry after a lost worker keeps it: the run has been waiting since then.
    queued_at: datetime | None = Field(default=None, sa_column=timestamptz())
    started_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
