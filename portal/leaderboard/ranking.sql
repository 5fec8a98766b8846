-- The ranking: the query behind the `leaderboard` materialized view, which
-- leaderboard/service.py reads and leaderboard/refresh.py refreshes.
--
-- One row per (batch, team with runs in it). A submission counts once all its runs have
-- ended (batch_submission.mean_score is set then); equal scores share a rank; the order
-- breaks ties by the earlier submission.
--
-- Migrations do not read this file: a migration is history and must build the same
-- view whenever it runs, so each one that (re)creates the view keeps its own copy of
-- the SQL (today 2026_11_26_1000-5d1e0b7c9a21). To change the ranking, edit this file
-- and add a migration that recreates the view from a copy of it (the previous text as
-- its downgrade); tests/integration/test_schema.py fails while the migrated view and
-- this file differ.
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
