"""Usage reports (API and pages) and the admin's per-team limit, over real gateway calls."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import psycopg
import pytest
import redis as sync_redis
import sqlalchemy as sa

from portal.audit.models import AuditLog
from portal.core.db import psycopg_conninfo
from portal.core.time import utcnow
from portal.llm import run_tokens
from portal.llm.models import LlmUsageLog
from tests.fixtures.clients import make_client
from tests.fixtures.factories import browser_login
from tests.fixtures.llm import chat, usage_rows
from tests.fixtures.services import room_in_the_minute


@pytest.fixture(autouse=True)
def _one_minute_bucket(services):
    """These tests count calls against the per-minute limit: keep each in one minute."""
    room_in_the_minute(services.redis_url)


async def calls(client, team, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = await client.post(
            "/llm/v1/chat/completions", json=chat("hello"), headers=team.auth
        )
        statuses.append(response.status_code)
    return statuses


def meter(page: str, label: str) -> str:
    """The "used / limit" a usage or limits page shows for one budget."""
    found = re.search(rf"<dt>{label}</dt>\s*<dd class=\"budget-figure\">([^<]*)", page)
    assert found, f"no {label!r} on the page"
    return found.group(1).strip()


def refusal_rate(page: str, label: str) -> tuple[str, str]:
    """The exceeded rate and refused count a usage page shows for one budget."""
    found = re.search(
        rf"<dt>{re.escape(label)}</dt><dd><span[^>]*>([^<]*)</span> "
        r"<span class=\"refused-count\">([^<]*)</span>",
        page,
    )
    assert found, f"no exceeded rate for {label!r} on the page"
    return found.group(1), found.group(2)


async def set_limit(client, admin, team, value):
    return await client.put(
        f"/api/v1/teams/{team.id}/llm-limit",
        json={"requests_per_minute": value},
        headers=admin.auth,
    )


async def test_team_usage_counts_calls_tokens_and_the_exceeded_rate(app, client, teams):
    admin, team, other = await teams.admin(), await teams.create(), await teams.create()
    assert (await set_limit(client, admin, team, 3)).status_code == 200
    assert await calls(client, team, 4) == [200, 200, 200, 429]
    assert await calls(client, other, 1) == [200]
    await app.state.llm_gateway.recorder.flush()

    usage = (await client.get("/api/v1/usage?window=hour", headers=team.auth)).json()
    totals = usage["totals"]
    assert (totals["calls"], totals["allowed"], totals["refused"], totals["failed"]) == (4, 3, 1, 0)
    assert totals["exceeded_rate"] == 0.25
    # "hello" is 1 token + 3 for the message; the echo answer "echo: hello" is 3 tokens.
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (12, 9)
    assert usage["requests_per_minute"] == 3 and usage["team_id"] == team.id
    assert usage["step_minutes"] == 1
    assert 60 <= len(usage["series"]) <= 62
    assert sum(step["calls"] for step in usage["series"]) == 4
    assert sum(step["refused"] for step in usage["series"]) == 1
    assert usage["teams"] == []

    # A participant sees only its own team.
    other_view = await client.get(f"/api/v1/usage?team_id={other.id}", headers=team.auth)
    assert other_view.status_code == 404

    # An admin sees every team, with a per-team breakdown and each team's limit.
    everyone = (await client.get("/api/v1/usage?window=day", headers=admin.auth)).json()
    assert everyone["totals"]["calls"] == 5 and everyone["team_id"] is None
    # An empty team_id (a form's field left blank) is every team too, not a 422.
    blank = await client.get("/api/v1/usage?window=day&team_id=", headers=admin.auth)
    assert blank.json()["totals"] == everyone["totals"]
    assert everyone["step_minutes"] == 15
    by_team = {row["team_id"]: row for row in everyone["teams"]}
    assert by_team[team.id]["requests_per_minute"] == 3
    assert by_team[team.id]["totals"]["exceeded_rate"] == 0.25
    assert by_team[other.id]["requests_per_minute"] == 10
    one = (await client.get(f"/api/v1/usage?team_id={other.id}", headers=admin.auth)).json()
    assert one["totals"]["calls"] == 1


def batch_entry(services, team_id: int, kind: str) -> int:
    """A batch of `kind` holding one submission of the team; its batch_submission id."""
    with psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as conn:
        batch_id = conn.execute(
            "INSERT INTO evaluation_batch (name, seeds, selection, status, started_at, kit, kind) "
            "VALUES (%s, '{7}', 'uploads', 'running', now(), 'tsp', %s) RETURNING id",
            (kind, kind),
        ).fetchone()[0]
        submission_id = conn.execute(
            "INSERT INTO submission (team_id, sha256, size_bytes, filename, storage_key, note, is_final) "
            "VALUES (%s, %s, 1, 's.py', 'k', '', false) RETURNING id",
            (team_id, kind.ljust(64, "0")),
        ).fetchone()[0]
        return conn.execute(
            "INSERT INTO batch_submission (batch_id, submission_id, team_id, status) "
            "VALUES (%s, %s, %s, 'running') RETURNING id",
            (batch_id, submission_id, team_id),
        ).fetchone()[0]


async def test_a_team_never_sees_the_gateway_calls_of_its_private_runs(
    app, client, teams, services
):
    # A run on the private seeds can read its seed and spend it as prompt tokens; the
    # team's usage report showed them, so its own code could tell it the private seeds.
    admin, team = await teams.admin(), await teams.create()
    redis = sync_redis.Redis.from_url(services.redis_url)
    prompts = {"public": "one two", "final": "a " * 41, "adhoc": "b " * 97}
    for kind, prompt in prompts.items():
        token = run_tokens.issue(redis, team.id, batch_entry(services, team.id, kind), 10)
        run_call = await client.post(
            "/llm/v1/chat/completions",
            json=chat(prompt),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert run_call.status_code == 200
    assert await calls(client, team, 1) == [200]  # "hello": 4 prompt tokens
    await app.state.llm_gateway.recorder.flush()

    public_run_and_own_call = (2 + 3) + (1 + 3)
    api = (await client.get("/api/v1/usage?window=hour", headers=team.auth)).json()["totals"]
    assert (api["calls"], api["prompt_tokens"]) == (2, public_run_and_own_call)
    await browser_login(client, team)
    page = (await client.get("/usage")).text
    assert re.search(r"<dt>Calls</dt><dd>2</dd>", page)
    assert re.search(rf"<dt>Prompt tokens</dt><dd>{public_run_and_own_call}</dd>", page)
    admins = await client.get(f"/api/v1/usage?window=hour&team_id={team.id}", headers=admin.auth)
    assert admins.json()["totals"]["calls"] == 4  # the organizers see every call


async def test_windows_select_what_they_say(app, client, teams):
    team = await teams.create()
    old = utcnow() - timedelta(hours=5)
    async with app.state.sessionmaker() as session:
        session.add(
            LlmUsageLog(
                team_id=team.id,
                model="echo",
                status_code=200,
                outcome="allowed",
                latency_ms=5,
                created_at=old,
            )
        )
        await session.commit()
    await calls(client, team, 1)
    await app.state.llm_gateway.recorder.flush()
    totals = {}
    for window in ("hour", "day", "all"):
        response = await client.get(f"/api/v1/usage?window={window}", headers=team.auth)
        totals[window] = response.json()["totals"]["calls"]
    assert totals == {"hour": 1, "day": 2, "all": 2}
    bad = await client.get("/api/v1/usage?window=week", headers=team.auth)
    assert bad.status_code == 422
    assert "window" in bad.json()["error"]["message"]


async def test_limit_override_is_admin_only_audited_and_applies(app, client, teams):
    admin, team = await teams.admin(), await teams.create()
    refused = await set_limit(client, team, team, 100)
    assert refused.status_code == 403

    response = await set_limit(client, admin, team, 1)
    assert response.json() == {
        "team_id": team.id,
        "requests_per_minute": 1,
        "tokens_per_minute": 100_000,
        "tokens_per_day": 2_000_000,
        "max_parallel": 4,
        "models": None,
        "overridden": ["requests_per_minute"],
        "is_override": True,
    }
    assert await calls(client, team, 2) == [200, 429]

    invalid = await set_limit(client, admin, team, -1)
    assert invalid.status_code == 422

    reset = await set_limit(client, admin, team, None)
    assert reset.json()["requests_per_minute"] == 10
    assert (reset.json()["overridden"], reset.json()["is_override"]) == ([], False)
    # Each process trusts its lookup for PORTAL_LLM_AUTH_CACHE_SECONDS (2 s by default).
    await asyncio.sleep(app.state.settings.llm_auth_cache_seconds + 0.1)
    assert await calls(client, team, 1) == [200]

    async with app.state.sessionmaker() as session:
        audits = (
            await session.execute(
                sa.select(AuditLog.action, AuditLog.details)
                .where(AuditLog.action == "llm.rate_limit")
                .order_by(AuditLog.id)
            )
        ).all()
    unset = dict.fromkeys(
        ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "max_parallel", "models")
    )
    assert [details for _, details in audits] == [
        {"previous": unset, "limits": {**unset, "requests_per_minute": 1}},
        {"previous": {**unset, "requests_per_minute": 1}, "limits": unset},
    ]


async def test_usage_pages_show_the_chart_and_the_admin_sets_limits(app, teams):
    admin, team = await teams.admin(), await teams.create(name="Chart Team")
    async with make_client(app) as api:
        await set_limit(api, admin, team, 2)
        assert await calls(api, team, 3) == [200, 200, 429]
    await app.state.llm_gateway.recorder.flush()

    async with make_client(app) as browser:
        await browser_login(browser, team)
        page = await browser.get("/usage")
        assert page.status_code == 200
        assert "<svg" in page.text and 'class="refused"' in page.text
        assert re.search(r"<dt>Exceeded rate</dt><dd[^>]*>33\.3 %</dd>", page.text)
        assert meter(page.text, "Requests this minute") == "2 / 2"
        fragment = await browser.get("/usage?window=day", headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith('<div id="usage-live"')
        assert "averaged over 15-minute steps" in fragment.text
        assert (await browser.get("/admin/usage")).status_code in (302, 303)

    async with make_client(app) as browser:
        csrf = await browser_login(browser, admin)
        overview = await browser.get("/admin/usage")
        assert "Chart Team" in overview.text and "By team" in overview.text
        saved = await browser.post(
            f"/admin/teams/{team.id}/llm-limit",
            data={"requests_per_minute": "25", "csrf_token": csrf},
        )
        assert saved.status_code == 303
        teams_page = await browser.get("/admin/teams")
        assert "Chart Team: LLM limits saved." in teams_page.text
        bad = await browser.post(
            f"/admin/teams/{team.id}/llm-limit",
            data={"requests_per_minute": "lots", "csrf_token": csrf},
        )
        assert bad.status_code == 422
        assert "lots&#39; is not a number of LLM calls per minute" in bad.text
    async with make_client(app) as api:
        limit = await api.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)
        assert limit.json()["requests_per_minute"] == 25


async def test_usage_pages_show_each_budget_as_the_gateway_counted_real_calls(
    app, client, teams, services
):
    room_in_the_minute(services.redis_url, seconds_needed=30)
    admin, team = await teams.admin(), await teams.create(name="Budget Team")
    limits = {
        "requests_per_minute": 6,
        "tokens_per_minute": 10_000,
        "tokens_per_day": 50_000,
        "max_parallel": 1,
        "models": ["echo", "echo-large"],
    }
    put = await client.put(f"/api/v1/teams/{team.id}/llm-limit", json=limits, headers=admin.auth)
    assert put.status_code == 200

    async def call(**extra) -> int:
        body = {**chat(), **extra}
        answer = await client.post("/llm/v1/chat/completions", json=body, headers=team.auth)
        return answer.status_code

    assert [await call(), await call()] == [200, 200]
    assert await call(max_tokens=20_000) == 429  # more than the minute's 10,000 tokens
    assert await call(model="gpt-4o") == 404  # not on the team's list
    # One call held in flight fills the team's single parallel slot.
    held = asyncio.create_task(call(messages=[{"role": "user", "content": "/sleep 2"}]))
    for _ in range(200):
        usage = await client.get("/api/v1/usage", headers=team.auth)
        if usage.json()["in_use"]["in_flight"] == 1:
            break
        await asyncio.sleep(0.01)
    assert await call() == 429  # parallel
    async with make_client(app) as browser:
        await browser_login(browser, team)
        during = (await browser.get("/usage")).text
    assert meter(during, "Calls in flight") == "1 / 1"
    assert meter(during, "Requests this minute") == "3 / 6"
    assert await held == 200
    assert [await call() for _ in range(4)] == [200, 200, 200, 429]  # the 7th request

    # What the gateway logged: the tokens the model reported for each call.
    rows = await usage_rows(app, team.id, expected=10)
    spent = sum((row.prompt_tokens or 0) + (row.completion_tokens or 0) for row in rows)
    async with make_client(app) as browser:
        await browser_login(browser, team)
        page = (await browser.get("/usage")).text
        fragment = (await browser.get("/usage", headers={"HX-Request": "true"})).text
    for shown in (page, fragment):  # the live part carries the budgets too
        assert meter(shown, "Requests this minute") == "6 / 6"
        assert meter(shown, "Tokens this minute") == f"{spent:,} / 10,000"
        assert meter(shown, "Tokens today") == f"{spent:,} / 50,000"
        assert meter(shown, "Calls in flight") == "0 / 1"
    assert re.search(r"resets [A-Z][a-z]{2} \d+, \d{4}, 00:00 UTC \(in (\d+ h )?\d+ min\)", page)
    assert "<li><code>echo</code></li><li><code>echo-large</code></li>" in page
    assert re.search(r"<dt>Calls</dt><dd>10</dd>", page)
    assert re.search(r"<dt>Exceeded rate</dt><dd[^>]*>40\.0 %</dd>", page)
    for label in ("Requests per minute", "Tokens (minute or day)", "Calls in flight"):
        assert refusal_rate(page, label) == ("10.0 %", "1 refused")
    assert refusal_rate(page, "Model not allowed") == ("10.0 %", "1 refused")

    async with make_client(app) as browser:
        await browser_login(browser, admin)
        overview = (await browser.get("/admin/usage")).text
    row = overview[
        overview.index("Budget Team") : overview.index("</tr>", overview.index("Budget Team"))
    ]
    numbers = re.findall(r'<td class="num">([^<]*)', row)
    assert [n.strip() for n in numbers] == ["10", "4", "40.0 %", f"{spent:,}"]
    assert re.findall(r"<span>(\w+ \d+)</span>", row) == [
        "requests 1",
        "tokens 1",
        "parallel 1",
        "model 1",
    ]
    assert f'href="/admin/teams/{team.id}/llm-limit"' in row
    assert "6/min · 10k tok/min" in row and "50k tok/day · 1 in flight · 2 models" in row
    assert refusal_rate(overview, "Model not allowed") == ("10.0 %", "1 refused")


def field_value(page: str, name: str) -> str:
    found = re.search(rf'<input id="l-{name}" name="{name}"[^>]*value="([^"]*)"', page)
    assert found, name
    return found.group(1)


def models_typed(page: str) -> str:
    return re.search(r'<textarea id="l-models"[^>]*>([^<]*)</textarea>', page).group(1)


async def test_limits_form_round_trip_with_models_none_and_a_refusal_keeping_what_was_typed(
    app, client, teams
):
    admin, team = await teams.admin(name="Organizers"), await teams.create(name="Form Team")
    async with make_client(app) as browser:
        csrf = await browser_login(browser, admin)

        async def submit(**fields):
            empty = dict.fromkeys(
                (
                    "requests_per_minute",
                    "tokens_per_minute",
                    "tokens_per_day",
                    "max_parallel",
                    "models",
                ),
                "",
            )
            return await browser.post(
                f"/admin/teams/{team.id}/llm-limit", data={**empty, **fields, "csrf_token": csrf}
            )

        # Numbers as the page shows them (100,000) are taken; repeated models count once.
        saved = await submit(
            requests_per_minute="30",
            tokens_per_minute="50,000",
            max_parallel="2",
            models="echo, gpt-4o-mini\nclaude-3-5-haiku, echo",
        )
        assert saved.status_code == 303
        limit = (await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)).json()
        assert limit == {
            "team_id": team.id,
            "requests_per_minute": 30,
            "tokens_per_minute": 50_000,
            "tokens_per_day": 2_000_000,
            "max_parallel": 2,
            "models": ["echo", "gpt-4o-mini", "claude-3-5-haiku"],
            "overridden": ["requests_per_minute", "tokens_per_minute", "max_parallel", "models"],
            "is_override": True,
        }
        page = (await browser.get(f"/admin/teams/{team.id}/llm-limit")).text
        assert field_value(page, "requests_per_minute") == "30"
        assert field_value(page, "tokens_per_minute") == "50,000"
        assert field_value(page, "tokens_per_day") == ""
        assert 'placeholder="2,000,000"' in page  # the default, in grey
        assert models_typed(page) == "echo, gpt-4o-mini, claude-3-5-haiku"
        assert (
            'Models: <span class="before">default</span> → '
            '<strong class="after">echo, gpt-4o-mini, claude-3-5-haiku</strong>'
        ) in page
        assert "by Organizers" in page

        # '-' is no model at all; the page says so and the list of changes shows it.
        assert (await submit(requests_per_minute="30", models="-")).status_code == 303
        limit = (await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)).json()
        assert limit["models"] == [] and limit["tokens_per_minute"] == 100_000
        page = (await browser.get(f"/admin/teams/{team.id}/llm-limit")).text
        assert models_typed(page) == "-"
        assert "none: every call is refused" in page
        assert 'Models: <span class="before">echo, gpt-4o-mini, claude-3-5-haiku</span>' in page

        # A refusal answers 422 with the form as typed, the field marked, nothing saved.
        typed = {"requests_per_minute": "45", "tokens_per_day": "2e6", "models": "echo, o1-mini"}
        refused = await submit(**typed)
        assert refused.status_code == 422
        assert (
            "&#39;2e6&#39; is not a number of tokens per day (0 to 1,000,000,000,000)"
            in refused.text
        )
        assert field_value(refused.text, "requests_per_minute") == "45"
        assert field_value(refused.text, "tokens_per_day") == "2e6"
        assert models_typed(refused.text) == "echo, o1-mini"
        invalid = re.findall(
            r'<(?:input|textarea) id="l-(\w+)"[^>]*aria-invalid="true"', refused.text
        )
        assert invalid == ["tokens_per_day"]
        too_long = await submit(models="echo, " + "m" * 121)
        assert too_long.status_code == 422
        assert re.findall(r'<textarea id="l-(\w+)"[^>]*aria-invalid="true"', too_long.text) == [
            "models"
        ]
        limit = (await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)).json()
        assert (limit["requests_per_minute"], limit["models"]) == (30, [])

        # All empty: every budget back to its default, and the Teams page says so.
        assert (await submit()).status_code == 303
        limit = (await client.get(f"/api/v1/teams/{team.id}/llm-limit", headers=admin.auth)).json()
        assert limit["overridden"] == [] and limit["models"] is None
        teams_page = (await browser.get("/admin/teams")).text
    cell = teams_page[teams_page.index(f'href="/admin/teams/{team.id}/llm-limit"') :]
    cell = cell[: cell.index("</a>")]
    assert "10/min<br>100k tok/min" in cell and "custom" not in cell.split(">", 1)[1]
