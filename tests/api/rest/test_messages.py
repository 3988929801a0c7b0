"""The REST API's messages for a first-time user's mistakes: each names the field and says why.

A body that is not JSON names the body and where parsing stopped; a payload that does not fit
its endpoint's Avro schema names the field and what it must be; Avro bytes that do not decode
say where they stop, without Python's words (no reprs, no exception class names).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobstore.cli.node import node_for_tests
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database

JSON = {"Content-Type": "application/json"}
PYTHON_WORDS = re.compile(r"0x[0-9a-f]+|<[^>]*object|Error\b|BytesIO|Traceback")


ORDER_REQUEST = {
    "type": "record",
    "name": "order_request",
    "fields": [
        {"name": "id", "type": "long"},
        {
            "name": "customer",
            "type": {
                "type": "record",
                "name": "customer",
                "fields": [
                    {"name": "name", "type": "string"},
                    {
                        "name": "tier",
                        "type": {"type": "enum", "name": "tier", "symbols": ["A", "B"]},
                    },
                ],
            },
        },
        {"name": "lines", "type": {"type": "array", "items": "int"}, "default": []},
        {"name": "labels", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "previous", "type": ["null", "customer"], "default": None},
    ],
}


@endpoint("/order", request_schema=ORDER_REQUEST)
def order(request: Any, ctx: JobContext) -> Any:
    return request


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    registry = default_registry()
    registry.add(getattr(order, MARK))
    node = node_for_tests(db, node_id="rest-messages", registry=registry)
    app = node.app(run_background=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        yield http


async def field_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The `errors` of a 400 invalid-request problem, after checking it is one."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "/api/v1/problems/invalid-request", body
    assert not PYTHON_WORDS.search(response.text), response.text
    errors: list[dict[str, Any]] = body["errors"]
    assert body["detail"] == "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b'{"endpoint": "/echo", "payload": }',
            "not valid JSON: Expecting value at line 1 column 34",
            id="missing-value",
        ),
        pytest.param(
            b'{"endpoint": "/echo",\n "payload": {} x',
            "not valid JSON: Expecting ',' delimiter at line 2 column 16",
            id="second-line",
        ),
        pytest.param(b"", "required: a JSON object with an endpoint", id="none"),
        pytest.param(b"\xff{}", "not valid JSON: it is not UTF-8 text (at byte 1)", id="not-utf8"),
        pytest.param(b"[1]", "must be a JSON object", id="not-an-object"),
    ],
)
async def test_a_body_that_is_not_json_names_the_body_and_where(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await client.post("/api/v1/jobs", content=content, headers=JSON)
    assert await field_errors(response) == [{"in": "body", "field": "body", "message": message}]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            {"seconds": "soon"},
            "field 'seconds' must be a double, got the string 'soon'",
            id="wrong-type",
        ),
        pytest.param({}, "missing required field 'seconds'", id="missing"),
        pytest.param({"seconds": None}, "field 'seconds' must be a double, got null", id="null"),
        pytest.param({"seconds": [5]}, "field 'seconds' must be a double, got an array", id="list"),
        pytest.param(
            [5],
            "the payload must be an object with the fields seconds, got an array",
            id="not-an-object",
        ),
        pytest.param(
            {"seconds": "x" * 500 + "\n"},
            f"field 'seconds' must be a double, got the string '{'x' * 40}...'",
            id="long-value-cut",
        ),
    ],
)
async def test_a_payload_that_fails_its_schema_says_which_field_and_why(
    client: httpx.AsyncClient, payload: Any, message: str
) -> None:
    response = await client.post("/api/v1/jobs", json={"endpoint": "/sleep", "payload": payload})
    assert await field_errors(response) == [
        {
            "in": "body",
            "field": "payload",
            "message": f"request does not match schema 'sleep_request': {message}",
        }
    ]


GOOD_ORDER = {"id": 1, "customer": {"name": "Ann", "tier": "A"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": 1.5}, "field 'id' must be a long, got the number 1.5"),
        (
            {"id": 2**64},
            f"field 'id' must be a long from {-(2**63)} to {2**63 - 1}, got the number",
        ),
        ({"customer": {"tier": "A"}}, "missing required field 'customer.name'"),
        (
            {"customer": {"name": "Ann", "tier": "C"}},
            "field 'customer.tier' must be one of A, B, got the string 'C'",
        ),
        ({"lines": [1, "two"]}, "field 'lines[1]' must be an int, got the string 'two'"),
        ({"lines": {"a": 1}}, "field 'lines' must be an array of ints, got an object"),
        ({"labels": {"k": 5}}, "field 'labels.k' must be a string, got the number 5"),
        ({"note": 5}, "field 'note' must be null or a string, got the number 5"),
        ({"previous": {"name": "Bo"}}, "missing required field 'previous.tier'"),
        (
            {"previous": 7},
            "field 'previous' must be null or an object with the fields name, tier, "
            "got the number 7",
        ),
    ],
)
async def test_nested_fields_are_named_by_their_path(
    client: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    ok = await client.post("/api/v1/jobs", json={"endpoint": "/order", "payload": GOOD_ORDER})
    assert ok.status_code == 201, ok.text
    payload = {**GOOD_ORDER, **change}
    response = await client.post("/api/v1/jobs", json={"endpoint": "/order", "payload": payload})
    [error] = await field_errors(response)
    assert error["field"] == "payload"
    assert error["message"].startswith(f"request does not match schema 'order_request': {message}")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\x01\x02", "it ends too early (in field 'seconds')", id="short"),
        pytest.param(b"\x00" * 8 + b"\x00\x00", "2 trailing bytes after the record", id="long"),
    ],
)
async def test_binary_payload_that_does_not_decode_says_why_in_plain_words(
    client: httpx.AsyncClient, data: bytes, reason: str
) -> None:
    body = {"endpoint": "/sleep", "payload_base64": base64.b64encode(data).decode()}
    response = await client.post("/api/v1/jobs", content=json.dumps(body), headers=JSON)
    assert await field_errors(response) == [
        {
            "in": "body",
            "field": "payload_base64",
            "message": f"the payload is not a valid Avro 'sleep_request' (binary): {reason}",
        }
    ]


async def test_an_empty_endpoint_is_still_refused_as_a_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/jobs", json={"endpoint": "", "payload": {}})
    assert await field_errors(response) == [
        {"in": "body", "field": "endpoint", "message": "must be a non-empty string"}
    ]


async def test_a_tag_conflict_says_what_differs(client: httpx.AsyncClient) -> None:
    first = {"endpoint": "/echo", "payload": {"a": 1, "b": [1, 2]}, "tag": "rest-1"}
    assert (await client.post("/api/v1/jobs", json=first)).status_code == 201
    # The same JSON written another way is the same job.
    same = b'{"tag": "rest-1", "endpoint": "/echo", "payload": {"b": [1,2],  "a": 1}}'
    again = await client.post("/api/v1/jobs", content=same, headers=JSON)
    assert again.status_code == 200, again.text
    other = {**first, "payload": {"a": 2, "b": [1, 2]}}
    response = await client.post("/api/v1/jobs", json=other)
    assert response.status_code == 409, response.text
    job_id = again.json()["id"]
    assert response.json()["detail"] == (
        f"job_tag 'rest-1' is already used by job {job_id} with a different payload"
    )
