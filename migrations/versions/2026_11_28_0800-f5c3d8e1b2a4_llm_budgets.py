"""llm budgets: tokens per minute and per day, parallel calls and models per team

`llm_usage_rate_limit` grows from one override (requests per minute) to every budget a
team can be given; each column NULL means the PORTAL_LLM_* default, so the one column
that existed becomes nullable too (a row may override only the tokens).
`llm_usage_log` records which model answered and which budget refused a call.

Revision ID: f5c3d8e1b2a4
Revises: e4b7c2d9a0f3
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f5c3d8e1b2a4"
down_revision: str | None = "e4b7c2d9a0f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("llm_usage_rate_limit", "requests_per_minute", nullable=True)
    op.add_column("llm_usage_rate_limit", sa.Column("tokens_per_minute", sa.Integer()))
    op.add_column("llm_usage_rate_limit", sa.Column("tokens_per_day", sa.BigInteger()))
    op.add_column("llm_usage_rate_limit", sa.Column("max_parallel", sa.Integer()))
    op.add_column("llm_usage_rate_limit", sa.Column("models", postgresql.ARRAY(sa.String(120))))
    for name, column in (
        ("tpm_not_negative", "tokens_per_minute"),
        ("tpd_not_negative", "tokens_per_day"),
        ("parallel_not_negative", "max_parallel"),
    ):
        op.create_check_constraint(
            op.f(f"ck_llm_usage_rate_limit_{name}"), "llm_usage_rate_limit", f"{column} >= 0"
        )

    op.add_column("llm_usage_log", sa.Column("answered_model", sa.String(120)))
    op.add_column("llm_usage_log", sa.Column("refusal", sa.String(10)))
    op.create_check_constraint(
        op.f("ck_llm_usage_log_refusal_known"),
        "llm_usage_log",
        "refusal IN ('requests', 'tokens', 'parallel', 'model')",
    )
    # Calls refused before this revision were all over the requests-per-minute limit.
    op.execute("UPDATE llm_usage_log SET refusal = 'requests' WHERE outcome = 'refused'")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_llm_usage_log_refusal_known"), "llm_usage_log", type_="check")
    op.drop_column("llm_usage_log", "refusal")
    op.drop_column("llm_usage_log", "answered_model")
    for name in ("tpm_not_negative", "tpd_not_negative", "parallel_not_negative"):
        op.drop_constraint(
            op.f(f"ck_llm_usage_rate_limit_{name}"), "llm_usage_rate_limit", type_="check"
        )
    op.execute("DELETE FROM llm_usage_rate_limit WHERE requests_per_minute IS NULL")
    for column in ("models", "max_parallel", "tokens_per_day", "tokens_per_minute"):
        op.drop_column("llm_usage_rate_limit", column)
    op.alter_column("llm_usage_rate_limit", "requests_per_minute", nullable=False)
