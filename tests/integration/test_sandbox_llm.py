"""Sandboxes on PORTAL_EVAL_NETWORK reach the LLM gateway and nothing else.

Real Docker: an internal network this test creates, the gateway-only listener bound to
the host's address on it, a real Dramatiq worker. Every server probed is one this test
(or the test session) started itself.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

from portal.core.background_server import BackgroundServer
from portal.core.db import psycopg_conninfo
from portal.main import create_gateway_app
from tests.evaluation_helpers import example, run_batch, upload
from worker.kits import tsp
from worker.sandbox.docker_runner import ensure_internal_network

PROBE = r"""
import json, os, socket, sys, urllib.error, urllib.request

def get(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception as exc:
        return type(exc).__name__

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except Exception as exc:
        return type(exc).__name__

base = os.environ["OPENAI_BASE_URL"].rstrip("/")
origin = base.rsplit("/llm/", 1)[0]
token = os.environ["OPENAI_API_KEY"]
targets = json.loads(sys.argv[3])
found = {
    "models": get(base + "/models", token),
    "api_on_gateway": get(origin + "/api/v1/teams/me", token),
    "login_page_on_gateway": get(origin + "/login"),
    "token": token,
}
for name, (host, port) in targets.items():
    found[name] = connect(host, port)
print("PROBE " + json.dumps(found))
with open(sys.argv[1]) as source:
    count = len(json.load(source)["cities"])
with open(sys.argv[2], "w") as target:
    json.dump({"tour": list(range(count))}, target)
"""


@pytest.fixture
def eval_network(docker_client):
    name = f"portal-test-eval-{uuid.uuid4().hex[:8]}"
    host = ensure_internal_network(docker_client, name)
    yield name, host
    docker_client.networks.get(name).remove()


@pytest.fixture
def gateway_listener(eval_settings, eval_network):
    _, host = eval_network
    server = BackgroundServer(create_gateway_app(eval_settings), host, 0, "test-llm-gateway")
    server.start()
    yield server.address + "/llm/v1"
    server.stop()


@pytest.fixture
def networked_eval_settings(eval_settings, eval_network, gateway_listener):
    return eval_settings.model_copy(
        update={"eval_network": eval_network[0], "eval_llm_url": gateway_listener}
    )


@pytest.fixture
def host_only_server():
    """A server on the host's loopback, standing in for anything else the host runs."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()


@pytest.fixture
def networked_worker(networked_eval_settings):
    import dramatiq

    from worker.tasks import setup

    broker, context = setup(networked_eval_settings)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        yield context
    finally:
        worker.stop()
        broker.close()


def run_logs(database_url: str) -> list[tuple[int, str, int]]:
    with psycopg.connect(psycopg_conninfo(database_url)) as connection:
        return connection.execute(
            "SELECT batch_submission_id, log, id FROM evaluation_run ORDER BY id"
        ).fetchall()


async def test_sandbox_reaches_the_gateway_and_nothing_else(
    client, teams, services, networked_worker, gateway_listener, host_only_server, eval_network
):
    admin = await teams.admin()
    prober = await teams.create(name="Prober")
    _, bridge_host = eval_network
    database, redis = urlsplit(services.database_url), urlsplit(services.redis_url)
    targets = {
        "host_loopback_server": ["127.0.0.1", host_only_server[1]],
        "host_server_via_bridge": [bridge_host, host_only_server[1]],
        "postgres_via_bridge": [bridge_host, database.port],
        "redis_via_bridge": [bridge_host, redis.port],
    }
    probe = PROBE.replace("sys.argv[3]", repr(json.dumps(targets)))
    await upload(client, prober, "probe.py", probe.encode())
    batch = await run_batch(client, admin, seeds=[1], wait_seconds=90)
    assert batch["progress"]["counts"] == {"scored": 1}, batch["runs"]

    ((_, log, _),) = run_logs(services.database_url)
    found = json.loads(log.split("PROBE ", 1)[1].splitlines()[0])
    assert found["models"] == 200  # the model, through the run's own token
    assert found["api_on_gateway"] == 404  # the listener serves /llm/* and nothing else
    assert found["login_page_on_gateway"] == 404
    for name in targets:
        assert found[name] != "connected", (name, found)
    # The run is over: its token no longer opens the gateway.
    expired = await client.get(
        "/llm/v1/models", headers={"Authorization": f"Bearer {found['token']}"}
    )
    assert expired.status_code == 401
    assert "run it belonged to ended" in expired.json()["error"]["message"]


async def test_llm_example_calls_the_gateway_with_a_run_token(
    client, teams, services, networked_worker
):
    admin = await teams.admin()
    delta = await teams.create(name="Delta")
    await upload(client, delta, "tsp_llm_hint.py", example("tsp_llm_hint.py"))
    batch = await run_batch(client, admin, seeds=[3, 4], wait_seconds=90)
    assert batch["progress"]["counts"] == {"scored": 2}, batch["runs"]
    assert all(run["score"] > 1.5 for run in batch["runs"])  # a real tour, not input order

    logs = run_logs(services.database_url)
    for _, log, _ in logs:
        assert "model said: echo: Which city" in log, log
    # The hint was used: the echoed question's last number is the last city.
    starts = {len(json.loads(tsp.generate(seed))["cities"]) - 1 for seed in (3, 4)}
    assert {int(log.split("tour from city ")[1].split()[0]) for _, log, _ in logs} == starts

    # Each call is logged as the team's, from evaluation, attributed to its run (the
    # gateway listener writes its buffer at least every second).
    rows = []
    deadline = time.monotonic() + 5
    while len(rows) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        with psycopg.connect(psycopg_conninfo(services.database_url)) as connection:
            rows = connection.execute(
                "SELECT team_id, source, outcome, batch_submission_id, prompt_tokens "
                "FROM llm_usage_log ORDER BY id"
            ).fetchall()
    assert len(rows) == 2
    assert {row[3] for row in rows} == {logs[0][0]}
    assert all(
        row[0] == delta.id and row[1:3] == ("eval", "allowed") and row[4] > 0 for row in rows
    )
    # The calls counted against the team's own limit.
    status = await client.get("/llm/v1/models", headers=delta.auth)
    assert status.headers["x-ratelimit-remaining-requests"] == "8"
