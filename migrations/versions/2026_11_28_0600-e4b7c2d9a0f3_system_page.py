"""system page: when each run was queued, and indexes for the System page's figures

`evaluation_run.queued_at` says how long the oldest queued run has waited (a run
re-queued by an organizer waits from then; existing runs take their entry's creation).
Indexes, so the page stays cheap however many runs and gateway calls there are:
- queued runs only (partial): the oldest of them and their count per batch;
- (status, finished_at): the runs finished per minute and the latest failures;
- a BRIN on llm_usage_log.created_at: the last hour's calls of every team (the
  existing index leads with the team). BRIN because the log is append-only in time
  order and written on every gateway call: it costs those writes next to nothing.

Revision ID: e4b7c2d9a0f3
Revises: d3f8a1b6c5e2
Create Date: 2026-11-28 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4b7c2d9a0f3"
down_revision: str | None = "d3f8a1b6c5e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("evaluation_run", sa.Column("queued_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE evaluation_run AS run SET queued_at = entry.created_at "
        "FROM batch_submission AS entry WHERE entry.id = run.batch_submission_id"
    )
    op.alter_column("evaluation_run", "queued_at", nullable=False, server_default=sa.func.now())
    op.create_index(
        "ix_evaluation_run_queued",
        "evaluation_run",
        ["queued_at", "batch_id"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_evaluation_run_status_finished_at", "evaluation_run", ["status", "finished_at"]
    )
    op.create_index(
        "ix_llm_usage_log_created_at_brin",
        "llm_usage_log",
        ["created_at"],
        postgresql_using="brin",
    )


def downgrade() -> None:
    op.drop_index("ix_llm_usage_log_created_at_brin", table_name="llm_usage_log")
    op.drop_index("ix_evaluation_run_status_finished_at", table_name="evaluation_run")
    op.drop_index("ix_evaluation_run_queued", table_name="evaluation_run")
    op.drop_column("evaluation_run", "queued_at")
