"""leaderboard view: every team in a batch, rank with ties, runs done / total

Revision ID: 5d1e0b7c9a21
Revises: 2096271a8a9b
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d1e0b7c9a21"
down_revision: str | None = "2096271a8a9b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per (batch, team with runs in it). A submission counts once all its runs have
# ended (batch_submission.mean_score is set then); equal scores share a rank; the order
# breaks ties by the earlier submission.
LEADERBOARD = """
CREATE MATERIALIZED VIEW leaderboard AS
WITH team_runs AS (
    SELECT r.batch_id, bs.team_id,
           count(*) AS runs_total,
           count(*) FILTER (WHERE r.status NOT IN ('queued', 'running')) AS runs_done
    FROM evaluation_run AS r
    JOIN batch_submission AS bs ON bs.id = r.batch_submission_id
    GROUP BY r.batch_id, bs.team_id
),
best AS (
    SELECT DISTINCT ON (bs.batch_id, bs.team_id)
           bs.batch_id, bs.team_id, bs.submission_id, bs.mean_score AS score,
           s.created_at AS submitted_at, bs.finished_at AS scored_at
    FROM batch_submission AS bs
    JOIN submission AS s ON s.id = bs.submission_id
    WHERE bs.mean_score IS NOT NULL
    ORDER BY bs.batch_id, bs.team_id, bs.mean_score DESC, s.created_at ASC, s.id ASC
)
SELECT tr.batch_id, tr.team_id, best.submission_id, best.score, best.submitted_at,
       best.scored_at, tr.runs_done, tr.runs_total,
       CASE WHEN best.score IS NULL THEN NULL
            ELSE rank() OVER (PARTITION BY tr.batch_id ORDER BY best.score DESC NULLS LAST)
       END AS rank,
       row_number() OVER (PARTITION BY tr.batch_id
                          ORDER BY best.score DESC NULLS LAST, best.submitted_at ASC,
                                   tr.team_id ASC) AS position
FROM team_runs AS tr
LEFT JOIN best ON best.batch_id = tr.batch_id AND best.team_id = tr.team_id
"""

PREVIOUS = """
CREATE MATERIALIZED VIEW leaderboard AS
SELECT DISTINCT ON (bs.batch_id, bs.team_id)
    bs.batch_id, bs.team_id, bs.submission_id, bs.mean_score AS score,
    s.created_at AS submitted_at, bs.finished_at AS scored_at
FROM batch_submission AS bs
JOIN submission AS s ON s.id = bs.submission_id
WHERE bs.mean_score IS NOT NULL
ORDER BY bs.batch_id, bs.team_id, bs.mean_score DESC, s.created_at ASC, s.id ASC
"""


def upgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW IF EXISTS leaderboard")
    op.execute(LEADERBOARD)
    # NOT NULL unique index: what REFRESH ... CONCURRENTLY needs.
    op.execute("CREATE UNIQUE INDEX uq_leaderboard_batch_team ON leaderboard (batch_id, team_id)")
    op.execute("CREATE INDEX ix_leaderboard_batch_position ON leaderboard (batch_id, position)")


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW IF EXISTS leaderboard")
    op.execute(PREVIOUS)
    op.execute("CREATE UNIQUE INDEX uq_leaderboard_batch_team ON leaderboard (batch_id, team_id)")
