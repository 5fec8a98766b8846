"""A team's public score does not wait behind an organizer's big batch: uploads' runs
have their own queue, which workers serve first."""

import psycopg

from portal.core.db import psycopg_conninfo
from tests.fixtures.competition import configure, wait_for_public_score
from tests.fixtures.evaluation import example, upload, wait_for_batch


async def test_an_upload_is_scored_before_a_long_admin_batch_gets_through(
    client, teams, services, eval_worker
):
    admin = await teams.admin()
    crowd = [await teams.create(name=f"Crowd {n}") for n in range(3)]
    for team in crowd:
        await upload(client, team, "input_order.py", example("tsp_input_order.py"))
    # An admin batch of 3 submissions x 8 seeds = 24 runs goes into the queue first.
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "big rerun", "seeds": list(range(1, 9)), "selection": "unevaluated"},
    )
    batch_id = created.json()["id"]
    assert (await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)).is_success

    await configure(client, admin, public_seeds=[101])
    latecomer = await teams.create(name="Latecomer")
    submission_id = await upload(client, latecomer, "two_opt.py", example("tsp_two_opt.py"))
    detail = await wait_for_public_score(client, latecomer, submission_id)
    assert detail["public_status"] == "scored"

    batch = await wait_for_batch(client, admin, batch_id)
    assert batch["progress"]["counts"] == {"scored": 24}
    with psycopg.connect(psycopg_conninfo(services.database_url)) as conn:
        public_started, batch_runs_after = conn.execute(
            """
            SELECT p.started_at,
                   (SELECT count(*) FROM evaluation_run AS r
                    WHERE r.batch_id = %s AND r.started_at > p.started_at)
            FROM evaluation_run AS p
            JOIN evaluation_batch AS b ON b.id = p.batch_id AND b.kind = 'public'
            JOIN batch_submission AS bs ON bs.id = p.batch_submission_id
            JOIN submission AS s ON s.id = bs.submission_id AND s.team_id = %s
            """,
            (batch_id, latecomer.id),
        ).fetchone()
    # The public run overtook most of the batch: only the runs a worker had already taken
    # or held (two threads, a few prefetched) may start before it.
    assert batch_runs_after >= 24 - 8, (public_started, batch_runs_after)
