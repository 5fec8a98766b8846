"""/metrics as operators use it: behind its token, every named metric there, and the
numbers moving after real work (uploads, a batch through the worker, gateway calls, a
leaderboard refresh), summed over every process of a real `portal serve` and
`portal worker`."""

from __future__ import annotations

import asyncio
import re
import socket

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from portal.core.embedded import free_loopback_port
from portal.leaderboard import refresh as leaderboard_refresh
from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.competition import worker_context
from tests.fixtures.environment import PROJECT_ROOT
from tests.fixtures.evaluation import example, running_eval_worker, upload, wait_for_batch
from tests.fixtures.live import portal_command
from tests.fixtures.metrics import METRICS_AUTH, METRICS_TOKEN, parse, scrape
from tests.fixtures.services import room_in_the_minute

NAMED_METRICS = (
    "portal_evaluation_runs_total",
    "portal_evaluation_queue_depth",
    "portal_evaluation_run_seconds_bucket",
    "portal_evaluation_workers_alive",
    "portal_llm_requests_total",
    "portal_llm_refusals_total",
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
    await client.get("/healthz")  # HTTP series exist from the first request served
    response = await client.get("/metrics", headers=METRICS_AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    missing = [name for name in NAMED_METRICS if not samples.has(name)]
    assert not missing, missing
    assert samples.value("portal_metrics_source_up", source="database") == 1
    assert samples.value("portal_metrics_source_up", source="redis") == 1
    # Every series the shipped Grafana dashboard queries is one the portal exposes.
    dashboard = (PROJECT_ROOT / "docs" / "grafana" / "portal-dashboard.json").read_text()
    queried = set(re.findall(r"portal_[a-z_]+", dashboard)) - {"portal_dashboard"}
    assert queried and not [name for name in sorted(queried) if not samples.has(name)]


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
    assert after.since(before, "portal_llm_refusals_total", kind="requests") == 1
    assert after.since(before, "portal_llm_refusals_total", kind="tokens") == 0
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


def leave_stale_values(directory, accepted: float) -> None:
    """What a killed earlier `portal serve` leaves behind: a value file of a process
    that is gone, saying `accepted` uploads were counted."""
    directory.mkdir(parents=True)
    values = MmapedDict(str(directory / "counter_999999.db"))
    key = mmap_key(
        "portal_submissions",
        "portal_submissions_total",
        ["result", "reason"],
        ["accepted", ""],
        "Uploads",
    )
    values.write_value(key, accepted, 0)
    values.close()


async def wait_for_workers(http: httpx.AsyncClient, count: int) -> None:
    for _ in range(300):
        if (await scrape(http)).value("portal_evaluation_workers_alive") == count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} worker processes never reported in")


async def test_one_scrape_adds_up_every_process_of_portal_serve_and_portal_worker(
    services, teams, tmp_path
):
    """Two uvicorn workers take the requests and uploads, two Dramatiq processes run
    the batch; whichever uvicorn worker answers the scrape reports all of it."""
    data_dir = tmp_path / "data"
    leave_stale_values(data_dir / "metrics" / "serve", accepted=1000)
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PORTAL_ENVIRONMENT": "test",
        "PORTAL_SECRET_KEY": "live-test-secret-key-long-enough-xxxxxxxxxxxx",
        "PORTAL_DATABASE_URL": services.database_url,
        "PORTAL_REDIS_URL": services.redis_url,
        "PORTAL_DATA_DIR": str(data_dir),
        "PORTAL_BASE_URL": url,
        "PORTAL_METRICS_TOKEN": METRICS_TOKEN,
        "PORTAL_EVAL_RUNNER": "process",
        "PORTAL_EVAL_ALLOW_PROCESS_RUNNER": "true",
        "PORTAL_EVAL_STALE_AFTER_SECONDS": "6",  # workers beat every 2 s
    }
    admin = await teams.admin()
    uploaders = [await teams.create() for _ in range(3)]
    serve = ["serve", "--port", str(port), "--workers", "2"]
    with (
        # The worker first: both start up side by side.
        portal_command(["worker", "--processes", "2"], env, tmp_path / "worker.log"),
        portal_command(serve, env, tmp_path / "serve.log", ready_url=f"{url}/healthz"),
    ):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await wait_for_workers(http, 2)
            # Side by side, so both uvicorn workers take some.
            sources = ("tsp_input_order.py", "tsp_nearest_neighbour.py", "tsp_two_opt.py")
            await asyncio.gather(
                *(
                    upload(http, team, f"s{number}.py", example(source))
                    for number, (team, source) in enumerate(zip(uploaders, sources, strict=True))
                ),
                *(http.get("/api/v1/competition") for _ in range(40)),
            )
            created = await http.post(
                "/api/v1/batches",
                headers=admin.auth,
                json={"name": "two workers", "seeds": [1, 2, 3, 4], "selection": "unevaluated"},
            )
            batch_id = created.json()["id"]
            started = await http.post(f"/api/v1/batches/{batch_id}/start", headers=admin.auth)
            assert started.status_code == 200, started.text
            batch = await wait_for_batch(http, admin, batch_id)
            assert batch["status"] == "finished"
            samples = await scrape(http)

    # The earlier run's leftovers were cleared before the processes started.
    assert samples.value("portal_submissions_total", result="accepted") == 3
    assert samples.value("portal_http_requests_total", route="/api/v1/competition") == 40
    # Counted by the worker's processes, reported by the web's.
    assert samples.value("portal_evaluation_runs_total", status="scored") == 12
    assert samples.value("portal_evaluation_run_seconds_count") == 12
    assert samples.value("portal_evaluation_queue_depth") == 0
    assert samples.value("portal_leaderboard_refresh_seconds_count") >= 1
