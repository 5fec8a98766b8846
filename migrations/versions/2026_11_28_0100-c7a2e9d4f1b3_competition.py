"""competition: one row of settings, batch kinds, and the `standings` view

The competition (name, window, freeze, public and private seeds) is one row; the batch
every upload is evaluated in is `kind = 'public'`, the final evaluation `kind = 'final'`,
and admins' own batches `kind = 'adhoc'` (every existing batch). The `standings`
materialized view ranks teams on the public, frozen and final boards.

The row starts open for four weeks with no seeds: an admin sets the real window and
seeds (uploads are scored once public seeds exist).

Revision ID: c7a2e9d4f1b3
Revises: b4d1f0c2e7a6
Create Date: 2026-11-28 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c7a2e9d4f1b3"
down_revision: str | None = "b4d1f0c2e7a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of portal/leaderboard/standings.sql (see there for the rules).
STANDINGS = """
CREATE MATERIALIZED VIEW standings AS
WITH competition_batches AS (
    SELECT public_batch_id, final_batch_id, freeze_at FROM competition
),
contenders AS (
    SELECT id AS team_id FROM team WHERE is_active AND role = 'participant'
),
public_entries AS (
    SELECT bs.team_id, bs.submission_id, bs.mean_score AS score, s.created_at AS submitted_at
    FROM batch_submission AS bs
    JOIN competition_batches AS c ON bs.batch_id = c.public_batch_id
    JOIN submission AS s ON s.id = bs.submission_id
    JOIN contenders AS t ON t.team_id = bs.team_id
),
entries AS (
    SELECT 'public'::text AS board, e.* FROM public_entries AS e
    UNION ALL
    SELECT 'frozen'::text, e.*
    FROM public_entries AS e, competition_batches AS c
    WHERE e.submitted_at < c.freeze_at
    UNION ALL
    SELECT 'final'::text, bs.team_id, bs.submission_id, bs.mean_score, s.created_at
    FROM batch_submission AS bs
    JOIN competition_batches AS c ON bs.batch_id = c.final_batch_id
    JOIN submission AS s ON s.id = bs.submission_id
    JOIN contenders AS t ON t.team_id = bs.team_id
),
best AS (
    SELECT DISTINCT ON (board, team_id) board, team_id, submission_id, score, submitted_at
    FROM entries
    ORDER BY board, team_id, score DESC NULLS LAST, submitted_at ASC, submission_id ASC
),
counted AS (
    SELECT board, team_id, count(*) AS entries, max(submitted_at) AS last_upload_at
    FROM entries
    GROUP BY board, team_id
)
SELECT b.board, b.team_id, b.submission_id, b.score, b.submitted_at, n.entries,
       n.last_upload_at,
       CASE WHEN b.score IS NULL THEN NULL
            ELSE rank() OVER (PARTITION BY b.board
                              ORDER BY b.score DESC NULLS LAST, b.submitted_at ASC)
       END AS rank,
       row_number() OVER (PARTITION BY b.board
                          ORDER BY b.score DESC NULLS LAST, b.submitted_at ASC,
                                   b.team_id ASC) AS position
FROM best AS b
JOIN counted AS n ON n.board = b.board AND n.team_id = b.team_id
"""


def upgrade() -> None:
    op.add_column(
        "evaluation_batch",
        sa.Column("kind", sa.String(10), nullable=False, server_default="adhoc"),
    )
    op.create_check_constraint(
        op.f("ck_evaluation_batch_kind_known"),
        "evaluation_batch",
        "kind IN ('adhoc', 'public', 'final')",
    )
    op.drop_constraint(
        op.f("ck_evaluation_batch_selection_known"), "evaluation_batch", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_evaluation_batch_selection_known"),
        "evaluation_batch",
        "selection IN ('final_picks', 'unevaluated', 'uploads')",
    )
    op.create_table(
        "competition",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column(
            "starts_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("freeze_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "public_seeds", postgresql.ARRAY(sa.BigInteger), nullable=False, server_default="{}"
        ),
        sa.Column(
            "private_seeds", postgresql.ARRAY(sa.BigInteger), nullable=False, server_default="{}"
        ),
        sa.Column(
            "public_batch_id", sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=True
        ),
        sa.Column(
            "final_batch_id", sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=True
        ),
        sa.Column("final_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_phase", sa.String(10), nullable=False, server_default="open"),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_competition_single_row")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_competition_ends_after_start")),
        sa.CheckConstraint(
            "freeze_at IS NULL OR (freeze_at >= starts_at AND freeze_at <= ends_at)",
            name=op.f("ck_competition_freeze_inside_window"),
        ),
    )
    op.execute(
        "INSERT INTO competition (id, name, starts_at, ends_at) "
        "VALUES (1, 'Competition', now(), now() + interval '28 days')"
    )
    op.execute(STANDINGS)
    # CONCURRENTLY needs a unique index; board + team is the view's key.
    op.execute("CREATE UNIQUE INDEX ux_standings_board_team ON standings (board, team_id)")
    op.execute("CREATE INDEX ix_standings_board_position ON standings (board, position)")


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW standings")
    op.drop_table("competition")
    op.execute("UPDATE evaluation_batch SET selection = 'unevaluated' WHERE selection = 'uploads'")
    op.drop_constraint(
        op.f("ck_evaluation_batch_selection_known"), "evaluation_batch", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_evaluation_batch_selection_known"),
        "evaluation_batch",
        "selection IN ('final_picks', 'unevaluated')",
    )
    op.drop_constraint(op.f("ck_evaluation_batch_kind_known"), "evaluation_batch", type_="check")
    op.drop_column("evaluation_batch", "kind")
