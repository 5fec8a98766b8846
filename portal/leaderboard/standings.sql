-- The competition's standings: the query behind the `standings` materialized view,
-- which leaderboard/service.py reads and leaderboard/refresh.py refreshes with the
-- per-batch `leaderboard` view.
--
-- One row per (board, team) for the three boards of the competition:
--   public  every upload's public score (the competition's public batch);
--   frozen  the same, counting only uploads made before freeze_at;
--   final   the final evaluation (the final batch: picks on the private seeds).
-- Only active participants are on a board (admins and deactivated teams never are; a
-- team change refreshes the view). A team's score is its best submission's; a tie goes
-- to the earlier submission, so ranks are distinct unless both score and upload time
-- are equal. Teams whose uploads have no score yet come last, unranked.
--
-- As with ranking.sql, migrations keep their own copy; tests/integration/test_schema.py
-- fails while the migrated view and this file differ.
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
