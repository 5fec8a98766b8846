"""Property-based fuzzing of the JSON API from its own OpenAPI schema (schemathesis),
against a real portal process, as a participant and as an admin: no answer is a server
error and every answer matches what the schema promises."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.fixtures.live import route_table_app

# Bounded for CI: enough to walk every operation's parameters and bodies.
EXAMPLES = 25


schema = schemathesis.openapi.from_dict(route_table_app().openapi()).exclude(
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


@pytest.fixture
async def participant(teams):
    return (await teams.create()).auth


@pytest.fixture
async def admin(teams):
    return (await teams.admin()).auth


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_api_as_a_participant(case, participant, live_portal):
    case.call_and_validate(base_url=live_portal, headers=participant, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_api_as_an_admin(case, admin, live_portal):
    case.call_and_validate(base_url=live_portal, headers=admin, checks=CHECKS)


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
