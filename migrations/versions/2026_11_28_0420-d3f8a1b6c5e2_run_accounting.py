"""run accounting: what each run cost, measured from its container's cgroup

CPU time (user and system), peak memory, the signal that ended it, how many bytes it
wrote and whether the kept log was cut, and the limits it ran under (settings change
between runs, so a run keeps its own). All nullable: runs before this had none, and a
run stopped by the worker's own deadline may have no measurement.

Revision ID: d3f8a1b6c5e2
Revises: c7a2e9d4f1b3
Create Date: 2026-11-28 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d3f8a1b6c5e2"
down_revision: str | None = "c7a2e9d4f1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("cpu_user_ms", sa.Integer),
    ("cpu_system_ms", sa.Integer),
    ("peak_memory_bytes", sa.BigInteger),
    ("exit_signal", sa.Integer),
    ("output_bytes", sa.BigInteger),
    ("output_truncated", sa.Boolean),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("evaluation_run", sa.Column(name, type_, nullable=True))
    op.add_column(
        "evaluation_run",
        sa.Column(
            "limits",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )


def downgrade() -> None:
    op.drop_column("evaluation_run", "limits")
    for name, _ in reversed(COLUMNS):
        op.drop_column("evaluation_run", name)
