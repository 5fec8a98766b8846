"""The LLM gateway against the real stand-in model, Redis and PostgreSQL.

Over 400 lines on purpose: every rule of one endpoint (tokens, the per-minute limit,
streaming, malformed calls, the buffered usage log and its shutdown) checked against the
same real services, sharing the call and usage-row helpers at the top. Upstream
connection handling lives in test_llm_upstream, the usage reports in test_llm_usage.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
import sqlalchemy as sa

from portal.core.db import create_engine
from portal.llm import run_tokens
from portal.llm.echo import EchoServer
from portal.llm.models import LlmUsageLog, LlmUsageRateLimit
from portal.llm.usage_log import UsageEntry, UsageRecorder
from portal.main import create_app
from portal.teams import service as teams_service
from portal.teams.models import Team
from tests.fixtures.clients import make_client
from tests.fixtures.factories import TeamFactory
from tests.fixtures.live import portal_process
from tests.fixtures.llm import chat, usage_rows
from tests.fixtures.servers import OK, ScriptedServer
from tests.fixtures.services import room_in_the_minute


@pytest.fixture(autouse=True)
def _one_minute_bucket(services):
    """These tests count calls against the per-minute limit: keep each in one minute."""
    room_in_the_minute(services.redis_url)


async def test_chat_completion_is_forwarded_and_logged_with_tokens(app, client, teams):
    team = await teams.create()
    response = await client.post(
        "/llm/v1/chat/completions", json=chat("count these five words"), headers=team.auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "echo: count these five words"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    reset = response.headers["x-ratelimit-reset-requests"]
    assert reset.endswith("s") and 1 <= int(reset[:-1]) <= 60

    (row,) = await usage_rows(app, team.id, expected=1)
    assert (row.model, row.status_code, row.outcome, row.source) == ("echo", 200, "allowed", "dev")
    assert (row.prompt_tokens, row.completion_tokens) == (7, 6)
    assert row.latency_ms > 0
    assert row.request_id == response.headers["x-request-id"]


async def test_the_eleventh_call_in_a_minute_is_refused_in_openai_shape(app, client, teams):
    team = await teams.create()
    for expected_remaining in range(9, -1, -1):
        ok = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-remaining-requests"] == str(expected_remaining)

    refused = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "10"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == f"{retry_after}s"
    assert refused.json() == {
        "error": {
            "message": "Rate limit reached: 10 requests per minute for your team. "
            f"Retry in {retry_after} s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    rows = await usage_rows(app, team.id, expected=11)
    assert [row.outcome for row in rows] == ["allowed"] * 10 + ["refused"]
    assert rows[-1].status_code == 429


async def test_next_minute_allows_again_and_refusals_do_not_consume(app, client, teams):
    """The minute bucket turns over on Redis's clock; refused calls took no slot from it."""
    team = await teams.create()
    for _ in range(10):
        assert (
            await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        ).status_code == 200
    for _ in range(5):
        refused = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        assert refused.status_code == 429
    await asyncio.sleep(int(refused.headers["retry-after"]) + 0.2)
    allowed = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    assert allowed.status_code == 200
    # Ten refusals before did not eat into the new minute: 9 left after one call.
    assert allowed.headers["x-ratelimit-remaining-requests"] == "9"


async def test_limit_holds_across_two_portal_processes(services, tmp_path, teams, echo_upstream):
    """50 concurrent calls spread over two uvicorn processes share one limit of 10."""
    team = await teams.create()
    upstream = {
        "PORTAL_LLM_UPSTREAM_URL": echo_upstream.url,
        "PORTAL_LLM_RPM": "10",
        "PORTAL_LLM_MAX_PARALLEL": "100",  # only the requests budget is measured here
    }
    with (
        portal_process(services, tmp_path, upstream, name="portal-a") as url_a,
        portal_process(services, tmp_path, upstream, name="portal-b") as url_b,
    ):
        room_in_the_minute(services.redis_url)  # the processes took a while to start
        async with httpx.AsyncClient(timeout=30) as http:
            calls = [
                http.post(
                    f"{(url_a, url_b)[index % 2]}/llm/v1/chat/completions",
                    json=chat(f"call {index}"),
                    headers=team.auth,
                )
                for index in range(50)
            ]
            responses = await asyncio.gather(*calls)
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
    # Both processes answered, and both refused: the count really was shared.
    served_by = {index % 2 for index, status in enumerate(statuses) if status == 429}
    assert served_by == {0, 1}
    # Stopping the processes flushed their buffered logs: every call is there.
    async with teams.sessionmaker() as session:
        outcomes = list(
            await session.scalars(
                sa.select(LlmUsageLog.outcome).where(LlmUsageLog.team_id == team.id)
            )
        )
    assert sorted(outcomes) == ["allowed"] * 10 + ["refused"] * 40


async def test_per_team_override_is_used(app, client, teams):
    team, other = await teams.create(), await teams.create()
    async with app.state.sessionmaker() as session:
        session.add(LlmUsageRateLimit(team_id=team.id, requests_per_minute=2))
        await session.commit()
    for _ in range(2):
        assert (
            await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        ).status_code == 200
    refused = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    # Another team keeps the default.
    other_call = await client.post("/llm/v1/chat/completions", json=chat(), headers=other.auth)
    assert other_call.headers["x-ratelimit-limit-requests"] == "10"


async def test_streamed_call_is_relayed_and_logged_with_real_usage(app, client, teams):
    team = await teams.create()
    async with client.stream(
        "POST",
        "/llm/v1/chat/completions",
        json=chat("stream me please", stream=True),
        headers=team.auth,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"] == "9"
        lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[5:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: stream me please"
    # The client did not ask for usage: the usage chunk the gateway asked for is not shown.
    assert all(chunk["choices"] for chunk in chunks)

    (row,) = await usage_rows(app, team.id, expected=1)
    assert (row.prompt_tokens, row.completion_tokens, row.outcome) == (6, 5, "allowed")


async def test_streamed_usage_is_passed_on_when_the_client_asks(app, client, teams):
    team = await teams.create()
    response = await client.post(
        "/llm/v1/chat/completions",
        json=chat("one two", stream=True, stream_options={"include_usage": True}),
        headers=team.auth,
    )
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 4


async def test_upstream_down_is_502_in_openai_shape_and_logged(settings, teams_for):
    dead = EchoServer().start()
    dead_url = dead.url
    dead.stop()
    app = create_app(settings.model_copy(update={"llm_upstream_url": dead_url}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        team = await teams_for(app).create()
        response = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_unavailable" and error["type"] == "server_error"
        assert "x-ratelimit-remaining-requests" in response.headers
        (row,) = await usage_rows(app, team.id, expected=1)
        assert (row.status_code, row.outcome) == (502, "failed")


async def test_one_teams_upstream_cookies_never_reach_the_next_teams_call(settings, teams_for):
    """A model server's Set-Cookie (a load balancer's, say) is not kept between calls."""

    async def sets_a_cookie(reader, writer, n) -> bool:
        writer.write(OK.replace(b"\r\n\r\n", f"\r\nset-cookie: who=call-{n}\r\n\r\n".encode()))
        await writer.drain()
        return True

    async with ScriptedServer(sets_a_cookie) as upstream:
        app = create_app(settings.model_copy(update={"llm_upstream_url": f"{upstream.url}/v1"}))
        async with app.router.lifespan_context(app), make_client(app) as client:
            factory = teams_for(app)
            for team in (await factory.create(), await factory.create()):
                response = await client.post(
                    "/llm/v1/chat/completions", json=chat(), headers=team.auth
                )
                assert response.status_code == 200
                assert "set-cookie" not in response.headers
    assert len(upstream.requests) == 2
    assert b"cookie:" not in upstream.requests[1].lower()


async def test_slow_upstream_is_504(settings, teams_for):
    app = create_app(settings.model_copy(update={"llm_read_timeout_seconds": 0.5}))
    async with app.router.lifespan_context(app), make_client(app) as client:
        team = await teams_for(app).create()
        response = await client.post(
            "/llm/v1/chat/completions", json=chat("/sleep 3"), headers=team.auth
        )
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
        (row,) = await usage_rows(app, team.id, expected=1)
        assert (row.status_code, row.outcome) == (504, "failed")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing API key"),
        ({"Authorization": "Bearer pt_not-a-real-token"}, "Incorrect API key"),
    ],
)
async def test_calls_without_a_valid_token_are_401(client, headers, message):
    response = await client.post("/llm/v1/chat/completions", json=chat(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert message in response.json()["error"]["message"]


async def test_deactivated_team_is_refused_within_the_lookup_cache_time(app, client, teams):
    team = await teams.create()
    assert (
        await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    ).status_code == 200
    async with app.state.sessionmaker() as session:
        await teams_service.set_active(session, await session.get(Team, team.id), False, actor=None)
        await session.commit()
    deactivated = time.monotonic()
    cache_seconds = app.state.settings.llm_auth_cache_seconds
    assert cache_seconds == 2  # the default: what this test proves is the shipped behaviour
    while True:
        response = await client.get("/llm/v1/models", headers=team.auth)
        if response.status_code == 401:
            break
        assert time.monotonic() - deactivated < cache_seconds + 0.5, "still served"
        await asyncio.sleep(0.1)
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
        (json.dumps({"model": "echo", "messages": []}).encode(), "messages"),
    ],
)
async def test_malformed_calls_are_400_and_cost_nothing(app, client, teams, body, param):
    team = await teams.create()
    response = await client.post(
        "/llm/v1/chat/completions",
        content=body,
        headers={**team.auth, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"
    ok = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    assert ok.headers["x-ratelimit-remaining-requests"] == "9"
    rows = await usage_rows(app, team.id, expected=2)
    assert [(r.status_code, r.outcome) for r in rows] == [(400, "failed"), (200, "allowed")]


async def test_models_lists_echo_without_consuming(client, teams):
    team = await teams.create()
    response = await client.get("/llm/v1/models", headers=team.auth)
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["echo", "echo-latest"]
    assert response.headers["x-ratelimit-remaining-requests"] == "10"


async def test_run_token_works_on_the_gateway_only_and_until_revoked(app, client, teams):
    import redis as sync_redis

    team = await teams.create()
    redis = sync_redis.Redis.from_url(app.state.settings.redis_url)
    token = run_tokens.issue(redis, team.id, batch_submission_id=None, timeout_seconds=10)
    run_auth = {"Authorization": f"Bearer {token}"}

    ok = await client.post("/llm/v1/chat/completions", json=chat(), headers=run_auth)
    assert ok.status_code == 200
    # It counts against the team's own limit.
    assert ok.headers["x-ratelimit-remaining-requests"] == "9"
    team_call = await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    assert team_call.headers["x-ratelimit-remaining-requests"] == "8"

    for path in ("/api/v1/teams/me", "/api/v1/submissions"):
        outside = await client.get(path, headers=run_auth)
        assert outside.status_code == 401, path
        assert "only works on the LLM gateway" in outside.json()["error"]["message"]

    run_tokens.revoke(redis, token, team.id)
    after = await client.post("/llm/v1/chat/completions", json=chat(), headers=run_auth)
    assert after.status_code == 401
    assert "run it belonged to ended" in after.json()["error"]["message"]
    redis.close()

    rows = await usage_rows(app, team.id, expected=2)
    assert [row.source for row in rows] == ["eval", "dev"]


async def test_buffered_log_is_written_within_a_second(app, client, teams):
    team = await teams.create()
    await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
    await asyncio.sleep(1.0)  # the writer flushes at least every second
    assert app.state.llm_gateway.recorder.pending == 0
    async with app.state.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(LlmUsageLog)) == 1


async def test_nothing_buffered_is_lost_on_graceful_shutdown(settings, teams):
    # A writer that would not flush for an hour: only shutdown can write these.
    app = create_app(settings.model_copy(update={"llm_usage_flush_seconds": 3600}))
    async with app.router.lifespan_context(app):
        team = await TeamFactory(app.state.sessionmaker).create()
        async with make_client(app) as client:
            for _ in range(5):
                await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        assert app.state.llm_gateway.recorder.pending == 5
    async with teams.sessionmaker() as session:
        count = sa.select(sa.func.count()).where(LlmUsageLog.team_id == team.id)
        assert await session.scalar(count) == 5


async def test_shutdown_during_a_flush_in_flight_loses_nothing(app, client, teams):
    """Shutdown arriving while the writer's INSERT waits on the database keeps those rows.

    Another transaction locks the log table, so the timer's flush is stuck mid-INSERT
    holding the rows it took from the buffer; stopping then must wait for it, not drop it.
    """
    team = await teams.create()
    recorder = app.state.llm_gateway.recorder
    async with app.state.engine.connect() as blocker:
        await blocker.execute(sa.text("LOCK TABLE llm_usage_log IN EXCLUSIVE MODE"))
        for _ in range(5):
            await client.post("/llm/v1/chat/completions", json=chat(), headers=team.auth)
        # The timer takes them and then waits on the lock.
        for _ in range(100):
            if not recorder.pending:
                break
            await asyncio.sleep(0.05)
        assert recorder.pending == 0
        stopping = asyncio.create_task(recorder.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()
        await blocker.rollback()
    await asyncio.wait_for(stopping, 10)
    async with app.state.sessionmaker() as session:
        count = sa.select(sa.func.count()).where(LlmUsageLog.team_id == team.id)
        assert await session.scalar(count) == 5


async def test_a_slow_model_call_does_not_hold_up_other_teams(app, client, teams):
    """A call waiting on the model does not hold up another team's call."""
    slow_team, fast_team = await teams.create(), await teams.create()
    slow = asyncio.create_task(
        client.post("/llm/v1/chat/completions", json=chat("/sleep 1.5"), headers=slow_team.auth)
    )
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    fast = await client.post("/llm/v1/chat/completions", json=chat(), headers=fast_team.auth)
    assert fast.status_code == 200
    assert time.perf_counter() - started < 1.0
    assert (await slow).status_code == 200


async def logged_by_the_writer(app, team_id: int, *, within: float = 5.0) -> list[LlmUsageLog]:
    """The team's rows as the background writer leaves them (no explicit flush)."""
    deadline = time.monotonic() + within
    while True:
        async with app.state.sessionmaker() as session:
            rows = list(
                await session.scalars(sa.select(LlmUsageLog).where(LlmUsageLog.team_id == team_id))
            )
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("model", ["echo\u0000x", "echo\ud800"], ids=["nul", "lone-surrogate"])
async def test_a_model_name_postgres_cannot_store_does_not_stop_usage_logging(
    app, client, teams, model
):
    sender, bystander = await teams.create(), await teams.create()
    # Sent as raw JSON: the escapes reach the gateway exactly as a client could send them.
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    response = await client.post(
        "/llm/v1/chat/completions",
        content=body,
        headers={**sender.auth, "content-type": "application/json"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"

    ok = await client.post("/llm/v1/chat/completions", json=chat(), headers=bystander.auth)
    assert ok.status_code == 200
    bystander_rows = await logged_by_the_writer(app, bystander.id)
    assert [(row.status_code, row.model) for row in bystander_rows] == [(200, "echo")]
    # The odd call is logged too, with what PostgreSQL can store of its model name.
    [odd] = await logged_by_the_writer(app, sender.id)
    assert odd.status_code == 404 and odd.model.startswith("echo") and "\x00" not in odd.model


async def test_a_row_the_database_refuses_is_dropped_without_holding_up_the_others(
    app, teams, caplog
):
    recorder = app.state.llm_gateway.recorder
    team = await teams.create()
    good = [
        UsageEntry(team_id=team.id, model="echo", status_code=200, outcome="allowed", latency_ms=1)
    ]
    # Passes every check the recorder makes, but breaks the table's CHECK constraint.
    poison = UsageEntry(team_id=team.id, model="echo", status_code=200, outcome="odd", latency_ms=1)
    recorder.record(good[0])
    recorder.record(poison)
    recorder.record(
        UsageEntry(team_id=team.id, model="echo", status_code=429, outcome="refused", latency_ms=1)
    )

    assert await recorder.flush() is True
    assert recorder.pending == 0
    rows = await usage_rows(app, team.id)
    assert [(row.status_code, row.outcome) for row in rows] == [(200, "allowed"), (429, "refused")]
    assert "dropped" in caplog.text


async def test_entries_are_kept_while_the_database_is_unreachable(teams):
    # A port bound but not listening: connecting is refused, as with PostgreSQL down.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
        engine = create_engine(f"postgresql://portal@127.0.0.1:{port}/portal")
        recorder = UsageRecorder(engine)
        team = await teams.create()
        for outcome in ("allowed", "odd"):  # even a row that will be refused later
            recorder.record(
                UsageEntry(
                    team_id=team.id, model="echo", status_code=200, outcome=outcome, latency_ms=1
                )
            )
        assert await recorder.flush() is False
        assert await recorder.flush() is False
        assert (recorder.pending, recorder.refused) == (2, 0)
        await engine.dispose()


async def test_entries_are_kept_while_the_database_refuses_every_write(app, settings, teams):
    # A failover to a read-only server refuses every row alike: not the rows' fault, so
    # none is dropped; they go in once writes are possible again.
    team = await teams.create()
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)

    async def read_only(on: bool) -> None:
        # On the pool's one connection, which the recorder then uses.
        async with engine.connect() as connection:
            await connection.execute(
                sa.text(f"SET SESSION default_transaction_read_only = {'on' if on else 'off'}")
            )
            await connection.commit()

    recorder = UsageRecorder(engine)
    for status_code, outcome in ((200, "allowed"), (429, "refused")):
        recorder.record(
            UsageEntry(
                team_id=team.id,
                model="echo",
                status_code=status_code,
                outcome=outcome,
                latency_ms=1,
            )
        )
    await read_only(True)
    assert await recorder.flush() is False
    assert (recorder.pending, recorder.refused) == (2, 0)
    await read_only(False)
    assert await recorder.flush() is True
    assert [row.status_code for row in await usage_rows(app, team.id)] == [200, 429]
    await engine.dispose()


async def test_a_refused_model_name_is_echoed_safely(client, teams):
    """A model outside the allowlist is named in the 404: sent as a lone surrogate or
    5,000 characters long, the answer is still a readable 404, not a server error."""
    admin, team = await teams.admin(), await teams.create()
    limited = await client.put(
        f"/api/v1/teams/{team.id}/llm-limit", json={"models": ["echo"]}, headers=admin.auth
    )
    assert limited.status_code == 200
    for model in ("bad\ud800model", "m" * 5000):
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        response = await client.post(
            "/llm/v1/chat/completions",
            content=body.encode(),
            headers={**team.auth, "content-type": "application/json"},
        )
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "model_not_found"
        assert "Models your team may call: echo." in error["message"]
        assert len(error["message"]) < 400
