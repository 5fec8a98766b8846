"""batch_submission: drop the per-row attempts and heartbeat (runs carry them)

Attempts and heartbeats belong to the (submission, seed) runs in `evaluation_run`, where
the worker claims and watches them; the copies on `batch_submission` were never written.
Its `seed_results` now holds the per-seed summary, written when the submission settles.

Revision ID: 7c3e5a1f9b40
Revises: 5d1e0b7c9a21
Create Date: 2026-11-26 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c3e5a1f9b40"
down_revision: str | None = "5d1e0b7c9a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_batch_submission_status_heartbeat", table_name="batch_submission")
    op.drop_column("batch_submission", "heartbeat_at")
    op.drop_column("batch_submission", "attempts")


def downgrade() -> None:
    op.add_column(
        "batch_submission",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.alter_column("batch_submission", "attempts", server_default=None)
    op.add_column(
        "batch_submission", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_batch_submission_status_heartbeat",
        "batch_submission",
        ["status", "heartbeat_at"],
        unique=False,
    )
