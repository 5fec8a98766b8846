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

import copy
import itertools
import json
import operator
import time
import typing
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from fastapi import params
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portal.core.db import psycopg_conninfo
from tests.factories import browser_login, csrf_from_login_page
from tests.live import route_table_app

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


# What a valid request carries in the fields not being fuzzed, so each request gets as
# far into the portal as the fuzzed field lets it. "{n}" makes names and files unique.
VALID_TEXT = {
    "email": "fuzz{n}@example.org",
    "name": "Fuzz {n}",
    "api_token": "pt_not_a_real_token",
    "note": "a note",
    "seeds": "1-2",
    "selection": "unevaluated",
    "role": "participant",
    "back": "list",
    "daily_limit": "3",
    "requests_per_minute": "100",
    "model": "echo",
    "content": "hello",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with {placeholders}
    encoding: str  # query | form | multipart | json
    fields: dict = field(hash=False, default_factory=dict)  # valid values of the others
    files: tuple[str, ...] = ()

    @property
    def is_api(self) -> bool:
        return self.path.startswith(("/api/", "/llm/"))


@dataclass(frozen=True)
class TextInput:
    operation: Operation
    key: tuple  # the field: a name, or a path into the JSON body

    def __str__(self) -> str:
        name = ".".join(str(part) for part in self.key)
        return f"{self.operation.method} {self.operation.path} {self.operation.encoding}:{name}"


# --- the inputs, from the OpenAPI schema (API) and the route table (pages) -------------


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _is_file(schema: dict) -> bool:
    return schema.get("format") == "binary" or "contentMediaType" in schema


def _is_text(document: dict, schema: dict) -> bool:
    schema = _resolve(document, schema)
    if schema.get("type") == "string":
        return not _is_file(schema)
    return any(_is_text(document, option) for option in schema.get("anyOf", []))


def _valid_json(document: dict, schema: dict, name: str = ""):
    schema = _resolve(document, schema)
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _valid_json(document, schema["anyOf"][0], name)
    kind = schema.get("type")
    if kind == "object":
        return {
            prop: _valid_json(document, sub, prop) for prop, sub in schema["properties"].items()
        }
    if kind == "array":
        return [_valid_json(document, schema["items"], name)]
    if kind == "integer":
        return 1
    if kind == "boolean":
        return False
    return VALID_TEXT.get(name, "text")


def _json_text_keys(document: dict, schema: dict, prefix: tuple = ()):
    schema = _resolve(document, schema)
    if _is_text(document, schema):
        yield prefix
    elif schema.get("type") == "object":
        for prop, sub in schema.get("properties", {}).items():
            yield from _json_text_keys(document, sub, (*prefix, prop))
    elif schema.get("type") == "array":
        yield from _json_text_keys(document, schema["items"], (*prefix, 0))


def api_inputs(document: dict):
    for path, operations in document["paths"].items():
        for lower_method, operation in operations.items():
            method = lower_method.upper()
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and _is_text(document, parameter["schema"]):
                    yield TextInput(Operation(method, path, "query"), (parameter["name"],))
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = content["application/json"]["schema"]
                body = Operation(method, path, "json", _valid_json(document, schema))
                for key in _json_text_keys(document, schema):
                    yield TextInput(body, key)
            if "multipart/form-data" in content:
                schema = _resolve(document, content["multipart/form-data"]["schema"])
                props = schema["properties"]
                files = tuple(name for name, sub in props.items() if _is_file(sub))
                texts_ = [name for name, sub in props.items() if _is_text(document, sub)]
                form = Operation(
                    method, path, "multipart", {n: VALID_TEXT.get(n, "") for n in texts_}, files
                )
                for name in texts_:
                    yield TextInput(form, (name,))


def _annotation_is_text(annotation) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, str):
        return True  # str, or a str enum such as the usage window
    return any(_annotation_is_text(arg) for arg in typing.get_args(annotation))


def _parameters(dependant, kind: str):
    yield from getattr(dependant, kind)
    for sub in dependant.dependencies:
        yield from _parameters(sub, kind)


def page_inputs(app):
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.original_route.include_in_schema:
            continue
        for method in sorted(route.methods):
            for parameter in _parameters(route.dependant, "query_params"):
                if _annotation_is_text(parameter.field_info.annotation):
                    yield TextInput(Operation(method, route.path, "query"), (parameter.alias,))
            body = list(_parameters(route.dependant, "body_params"))
            files = tuple(p.alias for p in body if isinstance(p.field_info, params.File))
            form = [p for p in body if p.alias not in files]
            valid = {}
            for p in form:
                default = p.field_info.default
                valid[p.alias] = VALID_TEXT.get(
                    p.alias, default if isinstance(default, str) else ""
                )
                if p.field_info.annotation is bool:
                    valid[p.alias] = "false"
            operation = Operation(
                method, route.path, "multipart" if files else "form", valid, files
            )
            for p in form:
                if _annotation_is_text(p.field_info.annotation):
                    yield TextInput(operation, (p.alias,))


def all_text_inputs() -> list[TextInput]:
    app = route_table_app()
    return [*api_inputs(app.openapi()), *page_inputs(app)]


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


# --- sending ------------------------------------------------------------------------

_unique = itertools.count(1)


def _raw(text: str) -> bytes:
    """What a client that checks nothing sends: a lone surrogate as (invalid) UTF-8."""
    return text.encode("utf-8", "surrogatepass")


def _multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + _raw(value)
        + b"\r\n"
        for name, value in fields.items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="s.py"\r\n'
        f"Content-Type: text/x-python\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _set(body, key: tuple, value: str):
    target = body
    for part in key[:-1]:
        target = target[part]
    target[key[-1]] = value


def _fill(value, n: int):
    if isinstance(value, str):
        return value.replace("{n}", str(n))
    if isinstance(value, dict):
        return {k: _fill(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, n) for v in value]
    return value


def send(http: httpx.Client, item: TextInput, text: str, caller: Caller, ids):
    operation = item.operation
    n = next(_unique)
    url = operation.path.format(**ids)
    is_api = operation.is_api
    headers = dict(caller.api_headers) if is_api else {}
    if operation.encoding == "query":
        url += "?" + urlencode({item.key[0]: _raw(text)})
        return http.request(operation.method.upper(), url, headers=headers)
    body = _fill(copy.deepcopy(operation.fields), n)
    _set(body, item.key, text)
    if operation.encoding == "json":
        content = json.dumps(body).encode()  # a lone surrogate goes as \ud800, as JSON allows
        headers["content-type"] = "application/json"
    elif operation.encoding == "form":
        content = urlencode({k: _raw(v) for k, v in {**body, "csrf_token": caller.csrf}.items()})
        headers["content-type"] = "application/x-www-form-urlencoded"
    else:
        fields = body if is_api else {**body, "csrf_token": caller.csrf}
        files = {name: f"print({n})\n".encode() for name in operation.files}
        content, boundary = _multipart(fields, files)
        headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    return http.request(operation.method.upper(), url, content=content, headers=headers)


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
                response = send(http, item, text, caller, world.path_ids)
                assert response.status_code < 500, (
                    f"{item} answered {response.status_code} to {text[:80]!r}: {response.text[:300]}"
                )
            a_gateway_call_is_logged_within_a_second(script, db, world.gateway_auth)

        for text in EVERY_INPUT_GETS:
            round_of_requests = example(dict.fromkeys(INPUTS, text))(round_of_requests)
        round_of_requests()
