"""/metrics as operators use it: behind its token, every named metric there, and the
numbers moving after real work (uploads, a batch through the worker, gateway calls, a
leaderboard refresh), summed over every process of a real `portal serve` and
`portal worker`."""

from __future__ import annotations

import socket

import httpx
import pytest

from portal.leaderboard import refresh as leaderboard_refresh
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.competition import worker_context
from tests.fixtures.evaluation import example, running_eval_worker, upload, wait_for_batch
from tests.fixtures.metrics import METRICS_AUTH, METRICS_TOKEN, parse, scrape
from tests.fixtures.services import room_in_the_minute

NAMED_METRICS = (
    "portal_evaluation_runs_total",
    "portal_evaluation_queue_depth",
    "portal_evaluation_run_seconds_bucket",
    "portal_evaluation_workers_alive",
    "portal_llm_requests_total",
    "portal_llm_upstream_seconds_bucket",
    "portal_leaderboard_refresh_seconds_bucket",
    "portal_submissions_total",
    "portal_http_requests_total",
    "portal_http_request_duration_seconds_bucket",
)


def assert_refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"]["code"] == "unauthorized" and says in body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "portal_" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-metrics-token"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"X-API-Token": METRICS_TOKEN},
    ],
    ids=["anonymous", "wrong-token", "longer-token", "basic-scheme", "api-token-header"],
)
async def test_metrics_refuse_callers_without_the_token_with_a_bearer_challenge(client, headers):
    # Whatever the client accepts (curl sends */*), the refusal is the API's JSON error.
    response = await client.get("/metrics", headers={"Accept": "*/*", **headers})
    assert_refused(response, "Authorization: Bearer")


async def test_metrics_refuse_everyone_while_no_token_is_configured(settings, teams_for):
    app = create_app(settings.model_copy(update={"metrics_token": None}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        admin = await teams_for(app).admin()
        for headers in ({}, METRICS_AUTH, admin.auth):
            assert_refused(await client.get("/metrics", headers=headers), "PORTAL_METRICS_TOKEN")


async def test_metrics_with_the_token_list_every_named_metric(client):
    response = await client.get("/metrics", headers=METRICS_AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    missing = [name for name in NAMED_METRICS if not samples.has(name)]
    assert not missing, missing
    assert samples.value("portal_metrics_source_up", source="database") == 1
    assert samples.value("portal_metrics_source_up", source="redis") == 1


async def test_uploads_are_counted_accepted_or_refused_with_their_reason(client, teams):
    team = await teams.create()
    before = await scrape(client)
    await upload(client, team, "first.py", example("tsp_input_order.py"))
    again = await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": ("again.py", example("tsp_input_order.py"), "text/x-python")},
    )
    assert again.status_code == 409
    broken = await client.post(
        "/api/v1/submissions",
        headers=team.auth,
        files={"file": ("broken.py", b"def (:\n", "text/x-python")},
    )
    assert broken.status_code == 422
    after = await scrape(client)
    name = "portal_submissions_total"
    assert after.since(before, name, result="accepted") == 1
    assert after.since(before, name, result="refused", reason="duplicate") == 1
    assert after.since(before, name, result="refused", reason="syntax_error") == 1
    assert after.since(before, name, result="refused") == 2


async def test_a_batch_through_the_worker_moves_queue_depth_runs_and_run_seconds(
    client, teams, settings
):
    admin = await teams.admin()
    for number, name in enumerate(("tsp_input_order.py", "tsp_nearest_neighbour.py")):
        await upload(client, await teams.create(), f"s{number}.py", example(name))
    before = await scrape(client)
    created = await client.post(
        "/api/v1/batches",
        headers=admin.auth,
        json={"name": "metrics", "seeds": [1, 2], "selection": "unevaluated"},
    )
    batch_id = created.json()["id"]
    started = await client.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
    assert started.status_code == 200, started.text

    # No worker yet: the four runs wait in the batch queue.
    queued = await scrape(client)
    assert queued.value("portal_evaluation_queue_depth", queue="batch") == 4
    assert queued.value("portal_evaluation_queue_depth", queue="public") == 0
    assert queued.value("portal_evaluation_workers_alive") == 0

    eval_settings = settings.model_copy(
        update={"eval_runner": "process", "eval_allow_process_runner": True}
    )
    with running_eval_worker(eval_settings):
        batch = await wait_for_batch(client, admin, batch_id)
        during = await scrape(client)
    assert batch["status"] == "finished"
    after = await scrape(client)

    assert after.since(before, "portal_evaluation_runs_total", status="scored") == 4
    assert after.since(before, "portal_evaluation_runs_total") == 4
    assert after.since(before, "portal_evaluation_run_seconds_count") == 4
    assert after.since(before, "portal_evaluation_run_seconds_sum") > 0
    assert after.value("portal_evaluation_queue_depth") == 0
    assert during.value("portal_evaluation_workers_alive") == 1
    assert during.value("portal_evaluation_worker_threads") == 2


async def test_gateway_calls_are_counted_by_outcome_with_upstream_latency(
    client, teams, services, settings, teams_for
):
    room_in_the_minute(services.redis_url)
    team = await teams.create()
    call = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}
    before = await scrape(client)
    for _ in range(10):
        ok = await client.post("/llm/v1/chat/completions", json=call, headers=team.auth)
        assert ok.status_code == 200
    over = await client.post("/llm/v1/chat/completions", json=call, headers=team.auth)
    assert over.status_code == 429
    nobody = await client.post(
        "/llm/v1/chat/completions", json=call, headers={"Authorization": "Bearer nope"}
    )
    assert nobody.status_code == 401
    after = await scrape(client)

    assert after.since(before, "portal_llm_requests_total", outcome="allowed") == 10
    assert after.since(before, "portal_llm_requests_total", outcome="refused") == 1
    assert after.since(before, "portal_llm_requests_total", outcome="unauthorized") == 1
    assert after.since(before, "portal_llm_upstream_seconds_count") == 10
    assert after.since(before, "portal_llm_upstream_seconds_sum") > 0

    # A model server that is not there: an upstream error, its failed attempt timed too.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    app = create_app(settings.model_copy(update={"llm_upstream_url": gone}))
    async with app.router.lifespan_context(app), make_client(app) as other:
        other_team = await teams_for(app).create()
        failed = await other.post("/llm/v1/chat/completions", json=call, headers=other_team.auth)
        assert failed.status_code == 502
        broken = await scrape(other)
    assert broken.since(before, "portal_llm_requests_total", outcome="upstream_error") == 1


async def test_a_leaderboard_refresh_is_timed(client, settings):
    before = await scrape(client)
    context = worker_context(settings)
    assert leaderboard_refresh.refresh(context.engine, context.redis)
    after = await scrape(client)
    assert after.since(before, "portal_leaderboard_refresh_seconds_count") == 1
    refreshed_at = after.value("portal_leaderboard_last_refresh_timestamp_seconds")
    assert refreshed_at > before.value("portal_leaderboard_last_refresh_timestamp_seconds")


async def test_a_database_that_never_answers_leaves_metrics_answering_what_they_can(settings):
    # Accepts connections (the kernel's backlog) and never says a word: a hung server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        hung = f"postgresql://portal:portal@127.0.0.1:{port}/portal"
        app = create_app(settings.model_copy(update={"database_url": hung}))
        async with app.router.lifespan_context(app), make_client(app) as client:
            response = await client.get("/metrics", headers=METRICS_AUTH)
    assert response.status_code == 200
    samples = parse(response.text)
    assert samples.value("portal_metrics_source_up", source="database") == 0
    assert samples.value("portal_metrics_source_up", source="redis") == 1
    assert samples.has("portal_evaluation_workers_alive")
    assert not samples.has("portal_evaluation_queue_depth")
    assert samples.has("portal_submissions_total", result="accepted")
