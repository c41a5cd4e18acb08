"""The REST API against its own OpenAPI document (GET /api/v1/openapi.json), on a live
`sessionroom serve` node: the document is valid OpenAPI 3.1, names exactly the routes the app
serves under /api/v1, and Schemathesis's generated requests (valid and invalid) get only
documented statuses, content types and bodies, with no 5xx, and every refusal is
{"code", "message"} with a code from docs/protocol.md."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from signaling.app import create_app
from tests.recording_fixtures import make_webm, storage_at, store_recording
from tests.server_process import SESSIONROOM, Server
from tests.support import API_KEY, make_keys, make_settings

PREFIX = "/api/v1"
DOCUMENT = f"{PREFIX}/openapi.json"
KEY = API_KEY
WRONG_KEY = "not-the-key-" + "x" * 31
ROOM = "contract-room"
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

# Generated examples per operation (fuzzing phase), as few as still find things: the
# coverage phase adds each parameter's boundary and type-mismatch cases on top.
MAX_EXAMPLES = 30
MAX_EXAMPLES_UNAUTHORIZED = 5


@cache
def documented_error_codes() -> frozenset[str]:
    """The stable codes of docs/protocol.md's "Errors" section: its table's first column,
    and the REST-only ones it names with their status, like `unauthorized` (401)."""
    text = PROTOCOL_DOC.read_text()
    section = text.split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    codes |= set(re.findall(r"`([a-z_]+)` \(\d{3}\)", section))
    assert codes, "no error codes found in docs/protocol.md"
    return frozenset(codes)


def refusals_carry_a_documented_code(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every 4xx under /api/v1 is JSON {"code", "message"} with a code from the protocol."""
    if not 400 <= response.status_code < 500:
        return None
    if case.method.upper() != case.operation.method.upper():
        # A method the path does not have (the coverage phase's probes): aiohttp's own 405,
        # checked by `unsupported_method` and `allow_header_conformance` instead.
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/json", (
        f"{response.status_code} answered as {content_type!r}, not JSON: {response.text[:200]!r}"
    )
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"code", "message"}, body
    assert isinstance(body["message"], str) and body["message"], body
    assert body["code"] in documented_error_codes(), (
        f"{body['code']!r} is not an error code in docs/protocol.md"
    )
    return None


# What a live node must keep to: no 5xx; only documented statuses, content types, headers
# and bodies; invalid input (negative mode) refused with a 4xx, valid input (positive mode)
# accepted unless the resource is missing; the API key really enforced (`ignored_auth`
# repeats each 2xx without, then with a wrong, Authorization header).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    ignored_auth,
    unsupported_method,
    allow_header_conformance,
    refusals_carry_a_documented_code,
]


def contract_config(
    base_url: str,
    headers: dict[str, str],
    *,
    max_examples: int,
    modes: str = "all",
    coverage: bool = True,
    security_parameters: bool = True,
) -> schemathesis.Config:
    """Settings for one Schemathesis run against `base_url`, as in a schemathesis.toml."""
    return schemathesis.Config.from_dict(
        {
            # The node under test, whatever the document's `servers` say.
            "base-url": base_url,
            "headers": headers,
            "request-timeout": 10,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": modes,
                "max-examples": max_examples,
                # No example database: each run starts afresh, and writes no examples.
                "database": "none",
                "with-security-parameters": security_parameters,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": coverage},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {
                # A 5xx is never the expected answer: not_a_server_error reports it.
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "405", "413", "415"]
                },
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "429"]
                },
            },
        }
    )


@dataclass(frozen=True)
class Node:
    url: str
    log: Path
    recording: str  # a finished recording of ROOM, kept
    doomed: str  # another one, for the DELETE
    file: str  # a file of `recording`


@pytest.fixture(scope="module")
def serve_command() -> list[str]:
    return [*SESSIONROOM, "serve"]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


@contextmanager
def _running(server: Server, command: list[str]) -> Iterator[None]:
    """`command` with the server's environment, until it is ready; stopped afterwards."""
    with server.log_path.open("ab") as log:
        proc = subprocess.Popen(command, env=server.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server.url, proc, server.log_path)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, serve_command: list[str]) -> Iterator[Node]:
    """One real node for the module, with an API key and two finished recordings on disk.
    Synchronous on purpose: Schemathesis's tests are, and they use it across the module."""
    tmp = tmp_path_factory.mktemp("contract")
    # No REST rate limit: Schemathesis sends hundreds of requests from one address.
    server = Server(tmp, SESSIONROOM_API_KEYS=KEY, SESSIONROOM_API_RATE_PER_SECOND="0")
    webm = make_webm(tmp / "source.webm", seconds=0.3)
    storage = storage_at(server.recordings)
    now = time.time()
    kept = store_recording(storage, ROOM, webm=webm, started_at=now - 120)
    doomed = store_recording(storage, ROOM, webm=webm, started_at=now - 60)
    with _running(server, serve_command):
        yield Node(server.url, server.log_path, kept.id, doomed.id, kept.files[0].name)


@pytest.fixture(scope="module")
def limited_node(
    tmp_path_factory: pytest.TempPathFactory, serve_command: list[str]
) -> Iterator[str]:
    """A node whose REST budget is two calls, for a 429 as the document describes it."""
    tmp = tmp_path_factory.mktemp("limited")
    server = Server(
        tmp,
        SESSIONROOM_API_KEYS=KEY,
        SESSIONROOM_API_RATE_BURST="2",
        SESSIONROOM_API_RATE_PER_SECOND="0.001",
    )
    with _running(server, serve_command):
        yield server.url


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


@pytest.fixture(scope="module")
def document(node: Node) -> dict[str, Any]:
    status, content_type, body = _get(node.url + DOCUMENT)
    assert status == 200, (status, body[:300])
    assert content_type.split(";")[0] == "application/json", content_type
    doc: dict[str, Any] = json.loads(body)
    return doc


@pytest.fixture(scope="module")
def api_schema(node: Node, document: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        node.url + DOCUMENT,
        config=contract_config(
            node.url, {"Authorization": f"Bearer {KEY}"}, max_examples=MAX_EXAMPLES
        ),
    )


@pytest.fixture(scope="module")
def unauthorized_schema(node: Node, document: dict[str, Any]) -> schemathesis.BaseSchema:
    # No security parameters generated: the requests carry no Authorization header at all,
    # unless the test adds a wrong one.
    return schemathesis.openapi.from_url(
        node.url + DOCUMENT,
        config=contract_config(
            node.url,
            {},
            max_examples=MAX_EXAMPLES_UNAUTHORIZED,
            modes="positive",
            coverage=False,
            security_parameters=False,
        ),
    )


def test_the_document_is_valid_openapi_3_1_and_needs_no_key(document: dict[str, Any]) -> None:
    assert str(document.get("openapi", "")).startswith("3.1"), document.get("openapi")
    validate(document)
    # A keyword JSON Schema does not know is silently no bound at all for a client.
    unknown = {"ge", "le", "gt", "lt", "min_length", "max_length"}

    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in unknown:
                    yield key
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    assert not list(walk(document)), "keywords JSON Schema does not know"


def _app_routes() -> set[tuple[str, str]]:
    # Its own backends are never started: building the app does no I/O.
    app = create_app(make_settings(api_keys=(KEY,)), make_keys())
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if (path == PREFIX or path.startswith(PREFIX + "/")) and route.method != "HEAD":
            routes.add((route.method, path))
    return routes


def _document_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return {
        (method.upper(), path)
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in methods
    }


def test_the_document_names_every_route_under_api_v1_and_no_other(
    document: dict[str, Any],
) -> None:
    # The document's own route may be in it or not.
    itself = {("GET", DOCUMENT)}
    served = _app_routes() - itself
    documented = _document_routes(document) - itself
    assert served, "the app serves nothing under /api/v1?"
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_every_operation_declares_bearer_security_and_its_errors(
    document: dict[str, Any],
) -> None:
    schemes = document.get("components", {}).get("securitySchemes", {})
    bearer = {
        n for n, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"
    }
    assert bearer, schemes
    for (method, path), operation in _operations(document).items():
        security = operation.get("security", document.get("security", []))
        if (method, path) == ("GET", DOCUMENT):
            continue
        assert any(set(requirement) & bearer for requirement in security), (method, path)
        assert "401" in operation.get("responses", {}), (method, path)


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): document["paths"][path][method.lower()]
        for method, path in _document_routes(document)
    }


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # Schemathesis 4.32's from_fixture() reads and rewrites `Function._nodeid`, which pytest
    # 9.2 no longer has (it keeps `_id`): without this it fails with AttributeError. Only
    # that attribute is read, so the test ids stay pytest's own.
    if "_nodeid" not in vars(request.node):
        vars(request.node)["_nodeid"] = request.node.nodeid


authorized = schemathesis.pytest.from_fixture("api_schema")
unauthorized = schemathesis.pytest.from_fixture("unauthorized_schema")


@authorized.parametrize()
def test_generated_requests_get_documented_answers(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)


@unauthorized.parametrize()
def test_requests_without_the_key_get_a_documented_401(case: schemathesis.Case[Any]) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        refusals_carry_a_documented_code,
    ]
    for headers in ({}, {"Authorization": f"Bearer {WRONG_KEY}"}, {"Authorization": "Basic Zm9v"}):
        response = case.call_and_validate(headers=headers, checks=checks)
        assert response.status_code == 401, (headers, response.status_code, response.text)
        assert response.json()["code"] == "unauthorized", response.text


def test_existing_resources_answer_as_documented(
    api_schema: schemathesis.BaseSchema, node: Node
) -> None:
    """Fuzzing rarely names a room or recording that exists: here the 2xx answers that
    carry data are checked against the document with real ids."""
    auth = {"Authorization": f"Bearer {KEY}"}

    def call(method: str, path: str, **kw: Any) -> schemathesis.Response:
        case = api_schema[path][method].Case(**kw)
        return case.call_and_validate(headers=auth, checks=CHECKS)

    created = call(
        "POST",
        f"{PREFIX}/rooms",
        body={"settings": {"max_clients": 2, "recording": "consent"}, "therapist_name": "Dr Lee"},
        media_type="application/json",
    )
    assert created.status_code == 201, created.text
    room = created.json()["id"]
    shown_room = call("GET", f"{PREFIX}/rooms/{{room_id}}", path_parameters={"room_id": room})
    assert shown_room.status_code == 200, shown_room.text
    link = call(
        "POST",
        f"{PREFIX}/rooms/{{room_id}}/links",
        path_parameters={"room_id": room},
        body={"role": "client", "name": "Sam"},
        media_type="application/json",
    )
    assert link.status_code == 201, link.text
    documented = _document_routes(api_schema.raw_schema)
    if ("GET", f"{PREFIX}/rooms") in documented:
        listed = call("GET", f"{PREFIX}/rooms", query={"limit": 1})
        assert listed.status_code == 200, listed.text

    listing = call("GET", f"{PREFIX}/recordings", query={"room": ROOM})
    assert {r["id"] for r in listing.json()["recordings"]} >= {node.recording, node.doomed}
    shown = call(
        "GET",
        f"{PREFIX}/recordings/{{recording_id}}",
        path_parameters={"recording_id": node.recording},
    )
    assert shown.status_code == 200, shown.text
    file = call(
        "GET",
        f"{PREFIX}/recordings/{{recording_id}}/files/{{name}}",
        path_parameters={"recording_id": node.recording, "name": node.file},
    )
    assert file.status_code == 200, file.text
    deleted = call(
        "DELETE",
        f"{PREFIX}/recordings/{{recording_id}}",
        path_parameters={"recording_id": node.doomed},
    )
    assert deleted.status_code == 204, deleted.text
    ended = call("DELETE", f"{PREFIX}/rooms/{{room_id}}", path_parameters={"room_id": room})
    assert ended.status_code == 204, ended.text


def test_a_spent_budget_gets_the_documented_429(
    api_schema: schemathesis.BaseSchema, limited_node: str
) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        refusals_carry_a_documented_code,
    ]
    operation = api_schema[f"{PREFIX}/rooms/{{room_id}}"]["GET"]
    statuses = []
    for _ in range(3):
        case = operation.Case(path_parameters={"room_id": "no-such-room"})
        response = case.call_and_validate(
            base_url=limited_node, headers={"Authorization": f"Bearer {KEY}"}, checks=checks
        )
        statuses.append(response.status_code)
    assert statuses == [404, 404, 429], statuses
    assert response.json()["code"] == "rate_limited", response.text
