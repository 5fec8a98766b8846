"""run statuses: add disk_limit (the sandbox's /work ran out of space or files)

The status columns of `batch_submission` and `evaluation_run` are strings guarded by a
CHECK constraint, so the new status means replacing that constraint on both tables.
Downgrading turns `disk_limit` back into `failed` (its reason text is kept) first.

Revision ID: b4d1f0c2e7a6
Revises: 7c3e5a1f9b40
Create Date: 2026-11-27 22:03:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b4d1f0c2e7a6"
down_revision: str | None = "7c3e5a1f9b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("batch_submission", "evaluation_run")
BEFORE = (
    "queued",
    "running",
    "scored",
    "failed",
    "timeout",
    "memory_limit",
    "invalid_answer",
    "cancelled",
)
AFTER = (*BEFORE, "disk_limit")


def _allow(statuses: tuple[str, ...]) -> None:
    condition = "status IN ({})".format(", ".join(f"'{status}'" for status in statuses))
    for table in TABLES:
        name = op.f(f"ck_{table}_status_known")
        op.drop_constraint(name, table, type_="check")
        op.create_check_constraint(name, table, condition)


def upgrade() -> None:
    _allow(AFTER)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"UPDATE {table} SET status = 'failed' WHERE status = 'disk_limit'")
    _allow(BEFORE)
