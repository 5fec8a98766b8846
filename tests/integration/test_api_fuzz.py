"""Property-based fuzzing of the JSON API from its own OpenAPI schema (schemathesis),
against a real portal process, as a participant and as an admin: no answer is a server
error and every answer matches what the schema promises."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from portal.core.config import Settings
from portal.main import create_app
from tests.live import portal_process

# Bounded for CI: enough to walk every operation's parameters and bodies.
EXAMPLES = 25


def _openapi_document() -> dict:
    """The schema the app serves at /openapi.json (building it touches no service)."""
    settings = Settings(
        environment="test",
        database_url="postgresql://unused@127.0.0.1:1/unused",
        redis_url="redis://127.0.0.1:1/0",
        storage_local_dir=Path(tempfile.gettempdir()) / "portal-openapi-only",
    )
    return create_app(settings).openapi()


schema = schemathesis.openapi.from_dict(_openapi_document()).exclude(
    # Rotating the caller's own token would end this run's credentials mid-way.
    path_regex=r".*/rotate-token$"
)


# What the issue asks of every answer: never a server error, and always what the schema
# says (status, content type, body, headers). Schemathesis's stricter method and
# lax-parsing probes (405 and Allow on undeclared methods, "false" taken as 0) are left
# out: they judge FastAPI's routing and pydantic's coercion, not this portal.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def live(services, echo_upstream, tmp_path_factory):
    """One portal process for the module; every test's own teams come and go under it."""
    upstream = {"PORTAL_LLM_UPSTREAM_URL": echo_upstream.url, "PORTAL_LLM_RPM": "100000"}
    with portal_process(services, tmp_path_factory.mktemp("fuzz"), upstream) as base_url:
        yield base_url


@pytest.fixture
async def participant(teams):
    return (await teams.create()).auth


@pytest.fixture
async def admin(teams):
    return (await teams.admin()).auth


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_api_as_a_participant(case, participant, live):
    case.call_and_validate(base_url=live, headers=participant, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_api_as_an_admin(case, admin, live):
    case.call_and_validate(base_url=live, headers=admin, checks=CHECKS)


async def test_what_the_fuzzer_found_stays_fixed(client, teams):
    """Numbers past PostgreSQL's integer range were 500s; now they say what to fix."""
    team = await teams.create()
    for path in (
        "/api/v1/submissions?page=2149543750733550336",
        "/api/v1/submissions/2147483648",
        "/api/v1/leaderboard?batch=99999999999",
    ):
        response = await client.get(path, headers=team.auth)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    # A daily upload limit past the column's range was a 500 too.
    admin = await teams.admin()
    response = await client.patch(
        f"/api/v1/teams/{team.id}",
        json={"daily_submission_limit": 2201019943244054},
        headers=admin.auth,
    )
    assert response.status_code == 422
    assert "daily_submission_limit" in response.json()["error"]["message"]
