"""The Kinetica facade's messages for a first-time user's mistakes.

Every one is an ERROR envelope whose message says what is wrong in plain words: bytes that are
not a request say where they stop (no Python reprs, no exception class names), an empty
endpoint lists the endpoints there are, a payload that does not fit its schema names the field,
and a Kinetica path opened with GET (a browser, curl) is told to POST.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import gpudb
import httpx
import pytest
import snappy

from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.cli.node import node_for_tests
from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.store import Database
from tests.support.e2e import Server

PYTHON_WORDS = re.compile(r"0x[0-9a-f]+|<[^>]*object|Error\b|BytesIO|Traceback")
CREATE_REQUEST = ENDPOINTS["/create/job"][0]
OCTET = {"Content-Type": "application/octet-stream"}
SNAPPY = {"Content-Type": "application/x-snappy"}


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    node = node_for_tests(db, node_id="kinetica-messages")
    app = node.app(run_background=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        yield http


def error_message(response: httpx.Response, status: int = 400) -> str:
    """The message of an ERROR envelope (JSON or Avro, as the answer's type says)."""
    assert response.status_code == status, response.content
    if response.headers["content-type"] == "application/octet-stream":
        envelope: dict[str, Any] = GPUDB_RESPONSE.decode(response.content)
    else:
        assert response.headers["content-type"] == "application/json", response.headers
        envelope = response.json()
    assert envelope["status"] == "ERROR" and envelope["data_type"] == "none", envelope
    message: str = envelope["message"]
    assert not PYTHON_WORDS.search(message), message
    return message


def create_body(endpoint: str, encoding: str, data: bytes = b"", data_str: str = "") -> bytes:
    """A create_job_request in Avro binary."""
    return CREATE_REQUEST.encode(
        {
            "endpoint": endpoint,
            "request_encoding": encoding,
            "data": data,
            "data_str": data_str,
            "options": {},
        }
    )


# -- bytes that are not a request ------------------------------------------------------------


async def test_binary_junk_says_it_is_not_a_create_request_in_plain_words(
    client: httpx.AsyncClient,
) -> None:
    # A string field of length 5 ("/echo"), then nothing: the next field is missing.
    response = await client.post("/create/job", content=b"\x0a/echo", headers=OCTET)
    assert error_message(response) == (
        "request body is not a valid Avro 'create_job_request' (binary): "
        "it ends too early (in field 'request_encoding')"
    )
    response = await client.post("/create/job", content=b"\x04\xff\xfe", headers=OCTET)
    assert error_message(response) == (
        "request body is not a valid Avro 'create_job_request' (binary): "
        "field 'endpoint' holds text that is not valid UTF-8"
    )
    whole = create_body("/echo", "json", data_str="{}")
    response = await client.post("/create/job", content=whole + b"\x00", headers=OCTET)
    assert error_message(response) == (
        "request body is not a valid Avro 'create_job_request' (binary): "
        "1 trailing bytes after the record"
    )
    snappy_junk = snappy.compress(b"\x0a/echo")
    response = await client.post("/create/job", content=snappy_junk, headers=SNAPPY)
    assert error_message(response) == (
        "request body is not a valid Avro 'create_job_request' (snappy): "
        "it ends too early (in field 'request_encoding')"
    )


async def test_random_bytes_never_answer_python_words(client: httpx.AsyncClient) -> None:
    rng = random.Random(20261122)
    for size in (1, 3, 8, 40, 300):
        for _ in range(20):
            junk = rng.randbytes(size)
            response = await client.post("/create/job", content=junk, headers=OCTET)
            if response.status_code == 200:  # junk that happens to be a request
                continue
            message = error_message(response)  # checks for Python words
            assert message.startswith(
                "request body is not a valid Avro 'create_job_request' (binary): "
            ) or message.startswith(("unknown endpoint", "no endpoint given")), message


async def test_a_binary_payload_that_does_not_decode_says_where_it_stops(
    client: httpx.AsyncClient,
) -> None:
    body = create_body("/sleep", "binary", data=b"\x01\x02")
    response = await client.post("/create/job", content=body, headers=OCTET)
    assert error_message(response) == (
        "the payload is not a valid Avro 'sleep_request' (binary): "
        "it ends too early (in field 'seconds')"
    )


# -- JSON that is not what it should be ------------------------------------------------------


@pytest.mark.parametrize(
    ("data_str", "reason"),
    [
        pytest.param(
            '{"seconds": "soon"}',
            "field 'seconds' must be a double, got the string 'soon'",
            id="wrong-type",
        ),
        pytest.param('{"second": 5}', "missing required field 'seconds'", id="missing"),
        pytest.param(
            '{"seconds": true}', "field 'seconds' must be a double, got true", id="boolean"
        ),
    ],
)
async def test_a_json_payload_that_fails_its_schema_names_the_field(
    client: httpx.AsyncClient, data_str: str, reason: str
) -> None:
    body = {"endpoint": "/sleep", "request_encoding": "json", "data_str": data_str}
    response = await client.post("/create/job", json=body)
    assert error_message(response) == f"request does not match schema 'sleep_request': {reason}"


async def test_json_that_does_not_parse_says_where(client: httpx.AsyncClient) -> None:
    body = {"endpoint": "/echo", "request_encoding": "json", "data_str": '{"a": 1,}'}
    response = await client.post("/create/job", json=body)
    assert error_message(response) == (
        "data_str is not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1 column 9"
    )
    response = await client.post("/get/job", content=b"", headers={"Content-Type": "text/json"})
    assert error_message(response) == "request body is not valid JSON: it is empty"


# -- the endpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["", "  "])
async def test_no_endpoint_lists_the_endpoints_there_are(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    body = {"endpoint": endpoint, "request_encoding": "json", "data_str": "{}"}
    response = await client.post("/create/job", json=body)
    assert error_message(response) == "no endpoint given: name one of /echo, /fail, /sleep"
    response = await client.post(
        "/create/job", content=create_body(endpoint, "json"), headers=OCTET
    )
    assert error_message(response) == "no endpoint given: name one of /echo, /fail, /sleep"


async def test_an_unknown_endpoint_still_says_so(client: httpx.AsyncClient) -> None:
    body = {"endpoint": "/nope", "request_encoding": "json", "data_str": "{}"}
    response = await client.post("/create/job", json=body)
    assert (
        error_message(response) == "unknown endpoint '/nope'; this service has /echo, /fail, /sleep"
    )


# -- a Kinetica path opened with GET ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/create/job", "/create/job"),
        ("GET", "/get/job", "/get/job"),
        ("GET", "/gpudb-0/admin/show/jobs", "/admin/show/jobs"),  # a client URL with a prefix
        ("PUT", "/create/job", "/create/job"),
        ("DELETE", "/admin/alter/jobs", "/admin/alter/jobs"),
    ],
)
async def test_a_kinetica_path_with_another_method_answers_an_error_envelope(
    client: httpx.AsyncClient, method: str, path: str, name: str
) -> None:
    response = await client.request(method, path)
    assert response.headers["allow"] == "POST"
    assert error_message(response, 405) == (
        f"{name} takes POST, not {method}; only the ping (GET /) takes GET"
    )


async def test_other_paths_and_methods_keep_their_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).text == "Kinetica is running!"
    # Not a Kinetica path: the framework's 405, as before.
    response = await client.get("/no/such/page")
    assert response.status_code == 405 and response.text == "Method Not Allowed"
    # The REST API's own 405 problem is untouched.
    response = await client.delete("/api/v1/jobs")
    assert response.status_code == 405
    assert response.json()["type"] == "/api/v1/problems/method-not-allowed"
    # And POST still serves the endpoint.
    body = {"endpoint": "/echo", "request_encoding": "json", "data_str": "{}"}
    response = await client.post("/create/job", json=body)
    assert response.status_code == 200 and response.json()["status"] == "OK"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(f"sqlite:///{tmp_path / 'jobstore.db'}", tmp_path, node_id="messages")
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_official_client_still_works_next_to_the_get_answer(server: Server) -> None:
    answer = httpx.get(f"{server.url}/create/job")
    assert answer.status_code == 405 and answer.json()["status"] == "ERROR"
    db = gpudb.GPUdb(host=server.url, options={"encoding": "JSON"})
    created = db.create_job("/echo", "json", "", json.dumps({"x": 1}), {"job_tag": "gpudb-1"})
    assert created.is_ok(), created.get_error_msg()
    refused = db.create_job("", "json", "", "{}", {})
    assert not refused.is_ok()
    assert refused.get_error_msg().startswith("no endpoint given: name one of ")
    assert "/echo, /fail" in refused.get_error_msg()
