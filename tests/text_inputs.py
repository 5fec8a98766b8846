"""Every text input of the portal, found from its OpenAPI schema (the API) and its
route table (the pages, which are not in the schema), and a way to send text to one of
them the way a client that checks nothing would."""

from __future__ import annotations

import copy
import itertools
import json
import typing
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from fastapi import params
from fastapi.routing import APIRoute, iter_route_contexts

from tests.live import route_table_app

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


def send(
    http: httpx.Client,
    item: TextInput,
    text: str,
    *,
    api_headers: dict[str, str],
    csrf: str,
    path_ids: dict[str, int],
) -> httpx.Response:
    """One request with `text` in `item` and valid values everywhere else; the API token
    on API calls, the CSRF token in page forms."""
    operation = item.operation
    n = next(_unique)
    url = operation.path.format(**path_ids)
    is_api = operation.is_api
    headers = dict(api_headers) if is_api else {}
    if operation.encoding == "query":
        url += "?" + urlencode({item.key[0]: _raw(text)})
        return http.request(operation.method.upper(), url, headers=headers)
    body = _fill(copy.deepcopy(operation.fields), n)
    _set(body, item.key, text)
    if operation.encoding == "json":
        content = json.dumps(body).encode()  # a lone surrogate goes as \ud800, as JSON allows
        headers["content-type"] = "application/json"
    elif operation.encoding == "form":
        content = urlencode({k: _raw(v) for k, v in {**body, "csrf_token": csrf}.items()})
        headers["content-type"] = "application/x-www-form-urlencoded"
    else:
        fields = body if is_api else {**body, "csrf_token": csrf}
        files = {name: f"print({n})\n".encode() for name in operation.files}
        content, boundary = _multipart(fields, files)
        headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    return http.request(operation.method.upper(), url, content=content, headers=headers)
