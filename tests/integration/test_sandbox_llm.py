"""Sandboxes on PORTAL_EVAL_NETWORK reach the LLM gateway and nothing else.

Real Docker: an internal network this test creates, the gateway-only listener bound to
the host's address on it, a real Dramatiq worker. Every server probed is one this test
(or the test session) started itself.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import pytest

from portal.core.background_server import BackgroundServer
from portal.main import create_gateway_app
from tests.fixtures.evaluation import example, run_batch, running_eval_worker, upload
from tests.fixtures.llm import CHAT_URL, chat, in_use, set_budgets, until_in_flight
from tests.fixtures.llm_runs import a_killed_runs_call_frees_its_slot, logged_calls, run_logs
from tests.fixtures.servers import all_interfaces_http_server
from tests.fixtures.services import room_in_the_minute
from worker.kits import tsp
from worker.sandbox.llm_relay import LlmRelay, gateway_address

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
        socket.create_connection((host, port), timeout=1).close()
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
def relay(docker_client, eval_image):
    relay = LlmRelay(docker_client, eval_image, f"portal-test-eval-{uuid.uuid4().hex[:8]}")
    yield relay
    relay.stop()
    for name in (relay.network, relay.uplink):
        docker_client.networks.get(name).remove()


# Far longer than any test here: a parallel slot freed during a test was freed by the
# run ending (or its call settling), never by its lease lapsing.
LEASE_SECONDS = 300


@pytest.fixture
def gateway_listener(eval_settings, relay):
    """The gateway-only app on the host's uplink address, behind the relay."""
    host = relay.prepare()
    settings = eval_settings.model_copy(update={"llm_lease_seconds": LEASE_SECONDS})
    server = BackgroundServer(create_gateway_app(settings), host, 0, "test-llm-gateway")
    server.start()
    port = int(server.address.rsplit(":", 1)[1])
    yield host, relay.start(host, port), port
    server.stop()


@pytest.fixture
def networked_eval_settings(eval_settings, relay, gateway_listener):
    return eval_settings.model_copy(
        update={"eval_network": relay.network, "eval_llm_url": gateway_listener[1]}
    )


@pytest.fixture
def host_server():
    """A server on every host interface: what a sandbox must not reach."""
    with all_interfaces_http_server() as (port, hits):
        yield port, hits


@pytest.fixture
def networked_worker(networked_eval_settings):
    with running_eval_worker(networked_eval_settings) as context:
        yield context


async def test_sandbox_reaches_the_gateway_and_nothing_else(
    client, teams, services, networked_worker, gateway_listener, host_server, relay, docker_client
):
    admin = await teams.admin()
    prober = await teams.create(name="Prober")
    uplink_host, _, listener_port = gateway_listener
    port, hits = host_server
    database, redis = urlsplit(services.database_url), urlsplit(services.redis_url)
    network = docker_client.networks.get(relay.network)
    nominal_gateway = gateway_address(network)
    default_bridge = gateway_address(docker_client.networks.get("bridge"))
    targets = {
        # A server on every host interface, by each address the host might answer on.
        "host_server_loopback": ["127.0.0.1", port],
        "host_server_uplink": [uplink_host, port],
        "host_server_evaluation_network": [nominal_gateway, port],
        "host_server_default_bridge": [default_bridge, port],
        "postgres_uplink": [uplink_host, database.port],
        "redis_uplink": [uplink_host, redis.port],
        # The gateway listener itself only through the relay, never directly.
        "gateway_listener_directly": [uplink_host, listener_port],
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
    assert hits == []
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
    # The two runs' calls and the check at the end must share one minute's budget.
    room_in_the_minute(services.redis_url, seconds_needed=40)
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

    # Each call is logged as the team's, from evaluation, attributed to its run, with
    # the model that answered it.
    rows = await logged_calls(services.database_url, count=2)
    assert {row.batch_submission_id for row in rows} == {logs[0][0]}
    assert all(
        (row.team_id, row.source, row.outcome, row.answered_model)
        == (delta.id, "eval", "allowed", "echo")
        and row.prompt_tokens > 0
        and row.completion_tokens > 0
        for row in rows
    )
    # The calls counted against the team's own budgets: its requests, and the tokens
    # the model reported, in this minute and today.
    spent = sum(row.prompt_tokens + row.completion_tokens for row in rows)
    status = await client.get("/llm/v1/models", headers=delta.auth)
    assert status.headers["x-ratelimit-remaining-requests"] == "8"
    assert status.headers["x-ratelimit-remaining-tokens"] == str(100_000 - spent)
    assert status.headers["x-ratelimit-remaining-tokens-day"] == str(2_000_000 - spent)
    held = await in_use(client, delta)
    assert (held["requests_this_minute"], held["tokens_this_minute"]) == (2, spent)
    assert (held["tokens_today"], held["in_flight"]) == (spent, 0)


async def test_a_killed_runs_call_in_flight_frees_its_slot_when_the_run_is_recorded(
    client, teams, services, networked_worker, eval_settings
):
    await a_killed_runs_call_frees_its_slot(
        client, teams, services.database_url, eval_settings.eval_timeout_seconds, LEASE_SECONDS
    )


async def run_hint_example(client, admin, team, database_url: str, rows_then: int):
    """Run the LLM example once; (its log, its one usage row). `rows_then`: the usage
    rows there are once the run's is written."""
    await upload(client, team, "tsp_llm_hint.py", example("tsp_llm_hint.py"))
    batch = await run_batch(client, admin, seeds=[3], wait_seconds=90)
    # Without its hint the example still answers, from city 0.
    assert batch["progress"]["counts"] == {"scored": 1}, batch["runs"]
    ((_, log, _),) = run_logs(database_url)
    (row,) = [row for row in await logged_calls(database_url, rows_then) if row.source == "eval"]
    return log, row


async def test_a_runs_call_is_refused_while_the_teams_own_call_holds_its_one_slot(
    client, teams, services, networked_worker
):
    admin = await teams.admin()
    team = await teams.create(name="Busy")
    await set_budgets(client, admin, team, max_parallel=1)
    # The team's own call, waiting on the model for the whole test.
    holding = asyncio.create_task(client.post(CHAT_URL, json=chat("/sleep 600"), headers=team.auth))
    try:
        await until_in_flight(client, team, 1)
        # Only the run's call is logged: the team's is still in flight.
        log, row = await run_hint_example(client, admin, team, services.database_url, 1)
    finally:
        holding.cancel()
    assert "no hint from the model (HTTP Error 429" in log, log
    assert (row.team_id, row.status_code, row.outcome, row.refusal) == (
        team.id,
        429,
        "refused",
        "parallel",
    )


async def test_a_runs_call_is_refused_when_the_teams_own_calls_spent_the_days_tokens(
    client, teams, services, networked_worker
):
    admin = await teams.admin()
    team = await teams.create(name="Spender")
    await set_budgets(client, admin, team, tokens_per_day=2900)
    # About 2,000 tokens of the team's 2,900 for the day, spent on its own: a prompt of
    # one token per byte, echoed back in full, reserves little more than it spends.
    own_call = await client.post(
        CHAT_URL, json=chat("!" * 1000, max_tokens=1010), headers=team.auth
    )
    assert own_call.status_code == 200, own_call.text
    spent = (await in_use(client, team))["tokens_today"]
    assert 2900 - spent < 1024  # less than any call reserves for its answer by default

    log, row = await run_hint_example(client, admin, team, services.database_url, 2)
    assert "no hint from the model (HTTP Error 429" in log, log
    assert (row.team_id, row.status_code, row.outcome, row.refusal) == (
        team.id,
        429,
        "refused",
        "tokens",
    )
    # The refused call took nothing.
    assert (await in_use(client, team))["tokens_today"] == spent


def test_a_stale_network_that_lets_sandboxes_reach_the_host_is_recreated(relay, docker_client):
    """A relay network left by an older setup (host address on it) is not reused as is."""
    docker_client.networks.create(relay.network, driver="bridge", internal=True)
    relay.prepare()
    options = docker_client.networks.get(relay.network).attrs["Options"]
    assert options.get("com.docker.network.bridge.inhibit_ipv4") == "true"
