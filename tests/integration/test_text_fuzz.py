"""Property: no text a user sends breaks the portal.

Generated text, with NUL, lone surrogates, bidi and other control characters and very
long strings, goes into every text input of a running portal: each JSON field and query
parameter of the API (from its OpenAPI schema) and each form field and query parameter
of the pages (from the route table: pages are not in the schema). As a visitor, a
participant and an admin, no answer is a server error; and after each round a normal
LLM gateway call still reaches the usage log within a second, so nothing a round sent
got stuck in a shared path.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portal.core.db import psycopg_conninfo
from tests.fixtures.factories import browser_login, csrf_from_login_page
from tests.fixtures.text_inputs import TextInput, all_text_inputs, send

# The characters issue 11 is about, and a few more that test encodings and display.
SPECIAL = (
    "\x00",
    "\ud800",
    "\udfff",
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u200f",
    "\ufeff",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u0085",
    "\u2028",
    "%00",
    "\ufffd",
    "名前",
    "🙂",
)
# One round sends every input the same text first: each class reaches every input.
EVERY_INPUT_GETS = ("\x00", "x\ud800y", "Evil\u202egnp.exe", "é" * 3000)
# A round is ~40 requests (~0.3 s): with the rounds above, about 40 s for all three callers.
GENERATED_ROUNDS = 30

FUZZ = settings(
    max_examples=GENERATED_ROUNDS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def texts() -> st.SearchStrategy[str]:
    fragment = st.one_of(
        st.text(max_size=12),
        st.sampled_from(SPECIAL),
        st.characters(categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Co")),
    )
    short = st.lists(fragment, max_size=6).map("".join)
    long = st.builds(
        operator.mul,
        st.sampled_from(["a", "\x00", "é", "\u202e", "🙂", "\ud800"]),
        st.integers(150, 4000),
    )
    return st.one_of(short, long)


INPUTS = all_text_inputs()


def test_the_walk_finds_the_inputs_issue_11_names():
    found = {str(item) for item in INPUTS}
    for expected in (
        "POST /api/v1/auth/login json:email",
        "GET /api/v1/leaderboard query:q",
        "POST /api/v1/submissions multipart:note",
        "POST /api/v1/teams json:name",
        "POST /api/v1/teams json:email",
        "POST /api/v1/batches json:name",
        "GET /api/v1/teams query:q",
        "GET /api/v1/audit query:action",
        "POST /llm/v1/chat/completions json:messages.0.content",
        "POST /login form:email",
        "GET /leaderboard query:q",
        "POST /submissions multipart:note",
        "POST /admin/teams form:name",
        "POST /admin/batches form:name",
        "GET /admin/teams query:q",
        "GET /admin/audit query:action",
    ):
        assert expected in found, sorted(found)


# --- the callers and what they need ------------------------------------------------


@dataclass
class Caller:
    """A role and its two ways in: scripts send its API token and no cookie (as curl
    does), a browser sends its page session and the session's CSRF token."""

    api_headers: dict[str, str]
    cookies: httpx.Cookies
    csrf: str


@dataclass
class World:
    callers: dict[str, Caller]
    path_ids: dict[str, int]
    gateway_auth: dict[str, str]


@pytest.fixture
async def world(teams, live_portal) -> World:
    participant = await teams.create()
    admin = await teams.admin()
    bystander = await teams.create()  # the team admin forms act on
    gateway_user = await teams.create()
    async with httpx.AsyncClient(base_url=live_portal) as http:
        uploaded = await http.post(
            "/api/v1/submissions",
            headers=participant.auth,
            files={"file": ("solution.py", b"print('hello')\n", "text/x-python")},
        )
        assert uploaded.status_code == 201, uploaded.text
        batch = await http.post(
            "/api/v1/batches",
            headers=admin.auth,
            json={"name": "Round 1", "seeds": [1], "selection": "unevaluated"},
        )
        # Started: from now on leaderboard searches run against its board.
        started = await http.post(f"/api/v1/batches/{batch.json()['id']}/start", headers=admin.auth)
        assert started.status_code == 200, started.text

    callers = {}
    for role, issued in (("visitor", None), ("participant", participant), ("admin", admin)):
        async with httpx.AsyncClient(base_url=live_portal) as http:
            if issued is None:
                csrf = await csrf_from_login_page(http)
                callers[role] = Caller({}, http.cookies, csrf)
            else:
                csrf = await browser_login(http, issued)
                callers[role] = Caller(issued.auth, http.cookies, csrf)
    ids = {
        "team_id": bystander.id,
        "submission_id": uploaded.json()["id"],
        "batch_id": batch.json()["id"],
    }
    return World(callers, ids, gateway_user.auth)


def a_gateway_call_is_logged_within_a_second(http, db, auth) -> None:
    response = http.post(
        "/llm/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "still there?"}]},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    answered = time.monotonic()
    query = "SELECT count(*) FROM llm_usage_log WHERE request_id = %s"
    while db.execute(query, (request_id,)).fetchone()[0] == 0:
        assert time.monotonic() - answered < 1.0, "a normal gateway call was not logged"
        time.sleep(0.05)


def one_text_per_input() -> st.SearchStrategy[dict[TextInput, str]]:
    return st.fixed_dictionaries({item: texts() for item in INPUTS})


@pytest.mark.parametrize("role", ["visitor", "participant", "admin"])
def test_no_text_in_any_input_is_a_server_error(role, world, live_portal, services):
    caller = world.callers[role]
    with (
        httpx.Client(base_url=live_portal, timeout=30) as script,
        httpx.Client(base_url=live_portal, cookies=caller.cookies, timeout=30) as browser,
        psycopg.connect(psycopg_conninfo(services.database_url), autocommit=True) as db,
    ):

        @FUZZ
        @given(one_text_per_input())
        def round_of_requests(texts_by_input: dict[TextInput, str]) -> None:
            for item, text in texts_by_input.items():
                http = script if item.operation.is_api else browser
                response = send(
                    http,
                    item,
                    text,
                    api_headers=caller.api_headers,
                    csrf=caller.csrf,
                    path_ids=world.path_ids,
                )
                assert response.status_code < 500, (
                    f"{item} answered {response.status_code} to {text[:80]!r}: {response.text[:300]}"
                )
            a_gateway_call_is_logged_within_a_second(script, db, world.gateway_auth)

        for text in EVERY_INPUT_GETS:
            round_of_requests = example(dict.fromkeys(INPUTS, text))(round_of_requests)
        round_of_requests()
