"""The input boundary (issue 16): what no store, encoder or page can hold is refused at the door,
in the dialect of the facade it was sent to, on SQLite and PostgreSQL.

Each of the seven defects a hostile-input run found has a test here that fails without the
boundary: a NUL in the dashboard's and CDM's filters, a NUL in a Basic user name, a deeply nested
CDM template, a job id of thousands of digits, a REST payload nested just under Python's limit,
and a lone surrogate in a JSON payload. Also: a client gone mid-body is no internal error, and a
list of ids is bounded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jobstore.api.boundary import check_request_line
from jobstore.cli.node import Node, node_for_tests
from jobstore.core.accounts import Authenticator
from jobstore.domain.errors import DecodeError
from jobstore.domain.inputs import DEFAULT_INPUT_LIMITS, DEFAULT_MAX_NESTING, InputLimits
from jobstore.store import Database
from tests.support.rest import problem

CDM = "/v1.1/p1/clusters/c1/cdm"
HUGE_ID = "9" * 4_400  # past Python's 4,300-digit int conversion limit
BASIC_NUL_USER = {"Authorization": "Basic YQBiOnB3"}  # "a\x00b:pw"


@dataclass
class Door:
    """The app of a node over the test's database, an in-process client, and alice's CDM
    token (project p1)."""

    node: Node
    client: httpx.AsyncClient
    token: str

    async def kinetica(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reply = await self.client.post(path, json=body)
        envelope: dict[str, Any] = reply.json()
        return reply.status_code, envelope

    async def cdm(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"X-Auth-Token": self.token}
        return await self.client.request(method, CDM + path, json=body, headers=headers)


async def _door(db: Database, **settings: Any) -> AsyncIterator[Door]:
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    _, token = await auth.create_token("alice", "p1")
    node = node_for_tests(db, **settings)
    transport = httpx.ASGITransport(app=node.app(run_background=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Door(node, client, token)
    finally:
        await node.executor.stop()


@pytest.fixture
async def door(db: Database) -> AsyncIterator[Door]:
    async for each in _door(db):
        yield each


@pytest.fixture
async def secured(db: Database) -> AsyncIterator[Door]:
    async for each in _door(db, auth="required"):
        yield each


def nested(depth: int) -> Any:
    """A JSON value `depth` levels deep: [[...[{}]...]]."""
    value: Any = {}
    for _ in range(depth - 1):
        value = [value]
    return value


def page_error(response: httpx.Response, status: int) -> str:
    """The dashboard's own error page, not Starlette's plain text."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "Traceback" not in response.text
    return response.text


def envelope_error(status: int, envelope: dict[str, Any], http: int = 400) -> str:
    assert status == http, envelope
    assert envelope["status"] == "ERROR", envelope
    return str(envelope["message"])


def cdm_error(response: httpx.Response, code: str = "Cdm.0014") -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errCode"] == body["code"] == code, body
    return str(body["message"])


def no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- 1, 2: a NUL in a filter ---------------------------------------------------------------------


async def test_a_nul_in_the_dashboards_endpoint_filter_is_a_400_page(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    for path in ("/ui?endpoint=%00", "/ui/live?endpoint=a%00b", "/ui/schedules?name=%00"):
        text = page_error(await door.client.get(path), 400)
        assert "NUL" in text
    no_internal_errors(caplog)


async def test_a_nul_in_cdms_listing_filters_is_a_cdm_400(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    for query in ("filter=%00", "jobType=%00", "filter=a%00"):
        response = await door.cdm("GET", f"/job/all?{query}")
        assert "NUL" in cdm_error(response)
    no_internal_errors(caplog)


async def test_a_nul_in_rest_and_kinetica_query_strings_is_refused_in_their_dialects(
    door: Door,
) -> None:
    body = problem(await door.client.get("/api/v1/jobs?endpoint=%00"), 400, "invalid-request")
    assert body["errors"] == [
        {"in": "query", "field": "endpoint", "message": "must not contain NUL characters"}
    ]
    reply = await door.client.post("/create/job?x=%00", json={})
    assert envelope_error(reply.status_code, reply.json()).startswith("query parameter 'x'")


# -- 3: a NUL in a Basic user name -----------------------------------------------------------


async def test_a_nul_in_a_basic_user_name_is_a_401_in_every_facade(
    secured: Door, caplog: pytest.LogCaptureFixture
) -> None:
    client = secured.client
    problem(await client.get("/api/v1/jobs", headers=BASIC_NUL_USER), 401, "unauthorized")
    page_error(await client.get("/ui", headers=BASIC_NUL_USER), 401)
    reply = await client.post("/create/job", json={}, headers=BASIC_NUL_USER)
    assert "authentication required" in envelope_error(reply.status_code, reply.json(), 401)
    no_internal_errors(caplog)


# -- 4, 7: CDM templates -------------------------------------------------------------------


def _cdm_job(name: str, template: str) -> dict[str, Any]:
    inputs = [
        {"name": "jobstoreConfig.endpoint", "value": "/echo"},
        {"name": "jobstoreConfig.request", "value": template},
    ]
    return {
        "name": name,
        "driver-config-values": {"configs": [{"name": "jobstoreConfig", "inputs": inputs}]},
    }


@pytest.mark.parametrize("template", ["[" * 3000 + "]" * 3000, '{"a": "\\ud800"}'])
async def test_a_cdm_template_no_store_can_hold_is_a_cdm_400_at_start(
    door: Door, template: str, caplog: pytest.LogCaptureFixture
) -> None:
    defined = await door.cdm("POST", "/job", {"jobs": [_cdm_job("deep", template)]})
    assert defined.status_code == 200, defined.text
    started = await door.cdm("PUT", "/job/deep/start")
    message = cdm_error(started)
    assert "nests deeper" in message or "Unicode" in message, message
    stored = await door.cdm("GET", "/job/deep")  # the definition itself reads back
    assert stored.status_code == 200, stored.text
    no_internal_errors(caplog)


# -- 5: a job id of thousands of digits ----------------------------------------------------


async def test_a_job_id_of_thousands_of_digits_is_a_400_not_a_500(door: Door) -> None:
    body = problem(await door.client.get(f"/api/v1/jobs/{HUGE_ID}"), 400, "invalid-request")
    assert "has 4400 digits; an id has at most 19" in body["detail"]
    assert body["errors"] == [
        {"in": "path", "field": "path", "message": body["errors"][0]["message"]}
    ]
    page_error(await door.client.get(f"/ui/jobs/{HUGE_ID}"), 400)
    # A number past the largest id is no job, as the facade says itself.
    problem(await door.client.get("/api/v1/jobs/9223372036854775808"), 404, "job-not-found")
    problem(await door.client.get("/api/v1/jobs/" + "9" * 64), 404, "job-not-found")
    # Elsewhere digits are names: a CDM job may be called so, and is merely not found.
    named = await door.cdm("GET", f"/job/{HUGE_ID}")
    assert named.status_code in (400, 404) and "errCode" in named.json(), named.text
    # The largest id is a well-formed id: not found, not refused.
    problem(await door.client.get("/api/v1/jobs/9223372036854775807"), 404, "job-not-found")


async def test_a_url_past_the_limit_is_refused(door: Door) -> None:
    long_query = "endpoint=" + "a" * DEFAULT_INPUT_LIMITS.max_url_bytes
    body = problem(await door.client.get(f"/api/v1/jobs?{long_query}"), 400, "invalid-request")
    assert "longer than" in body["detail"]


# -- 6: nesting, one rule at the door ------------------------------------------------------


async def test_a_rest_payload_nested_past_the_limit_is_refused_at_create(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    for depth in (DEFAULT_MAX_NESTING + 1, 970, 5000):
        body = '{"endpoint": "/echo", "payload": ' + "[" * depth + "]" * depth + "}"
        response = await door.client.post(
            "/api/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
        body = problem(response, 400, "invalid-request")
        assert f"a payload nests at most {DEFAULT_MAX_NESTING} levels" in body["detail"], body
    no_internal_errors(caplog)


async def test_a_payload_at_the_limit_reads_back_through_every_facade(door: Door) -> None:
    payload = nested(DEFAULT_MAX_NESTING)
    created = await door.client.post("/api/v1/jobs", json={"endpoint": "/echo", "payload": payload})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    await door.node.executor.run_once()
    rest = await door.client.get(f"/api/v1/jobs/{job_id}/result")
    assert rest.status_code == 200, rest.text
    assert rest.json()["result"] == {"encoding": "json", "json": payload}
    status, envelope = await door.kinetica("/get/job", {"job_id": job_id, "options": {}})
    assert status == 200 and envelope["status"] == "OK", envelope
    assert json.loads(json.loads(envelope["data_str"])["job_response_str"]) == payload
    page = await door.client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200, page.text
    kinetica_deep = {
        "endpoint": "/echo",
        "request_encoding": "json",
        "data_str": json.dumps(nested(DEFAULT_MAX_NESTING + 1)),
        "options": {},
    }
    status, envelope = await door.kinetica("/create/job", kinetica_deep)
    assert "nests deeper than" in envelope_error(status, envelope)


# -- 7: lone surrogates ----------------------------------------------------------------------


async def test_a_lone_surrogate_in_a_kinetica_payload_is_refused(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    for data_str in ('{"a": "\\ud800"}', '"\\udfff x"', '{"\\uD800": 1}'):
        body = {"endpoint": "/echo", "request_encoding": "json", "data_str": data_str}
        status, envelope = await door.kinetica("/create/job", {**body, "options": {}})
        assert "not valid Unicode" in envelope_error(status, envelope)
    # A surrogate pair is a real character, and JSON writes a NUL escaped: both are accepted,
    # and read back through every facade.
    body = {"endpoint": "/echo", "request_encoding": "json", "data_str": '"\\ud83d\\ude00\\u0000"'}
    status, envelope = await door.kinetica("/create/job", {**body, "options": {}})
    assert status == 200, envelope
    job_id = json.loads(envelope["data_str"])["job_id"]
    await door.node.executor.run_once()
    page = await door.client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200 and "\U0001f600" in page.text
    result = await door.client.get(f"/api/v1/jobs/{job_id}/result")
    assert result.json()["result"]["json"] == "\U0001f600\x00"
    status, envelope = await door.kinetica("/get/job", {"job_id": job_id, "options": {}})
    assert status == 200 and "\\u0000" in envelope["data_str"], envelope
    no_internal_errors(caplog)


async def test_numbers_too_large_for_a_double_are_refused(door: Door) -> None:
    for payload in ("1e400", "[-1e999]", "1" * 400 + ".5"):
        body = {"endpoint": "/echo", "request_encoding": "json", "data_str": payload}
        status, envelope = await door.kinetica("/create/job", {**body, "options": {}})
        assert "too large" in envelope_error(status, envelope)


# -- lists, disconnects ----------------------------------------------------------------------


async def test_a_list_of_ids_past_the_limit_is_refused(db: Database) -> None:
    async for door in _door(db, max_list_items=5):
        ids = list(range(1, 7))
        body = {"job_ids": ids, "action": "cancel", "options": {}}
        status, envelope = await door.kinetica("/admin/alter/jobs", body)
        assert "at most 5" in envelope_error(status, envelope)
        status, envelope = await door.kinetica("/admin/alter/jobs", {**body, "job_ids": ids[:5]})
        assert status == 200, envelope


async def test_a_client_gone_mid_body_is_no_internal_error(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    app = door.client._transport.app  # type: ignore[attr-defined]
    messages = [
        {"type": "http.request", "body": b'{"endpoint": "/ec', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/jobs",
        "raw_path": b"/api/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    with caplog.at_level(logging.INFO, logger="jobstore"):
        await app(scope, receive, send)
    assert sent and sent[0]["status"] == 400
    no_internal_errors(caplog)
    assert any("disconnected" in r.getMessage() for r in caplog.records)


# -- the checks themselves --------------------------------------------------------------------


def test_a_nul_in_a_header_is_refused() -> None:
    scope = {"path": "/", "query_string": b"", "headers": [(b"x-name", b"a\x00b")]}
    with pytest.raises(DecodeError, match="x-name"):
        check_request_line(scope, DEFAULT_INPUT_LIMITS)


@pytest.mark.parametrize(
    "fields", [{"max_nesting": 0}, {"max_nesting": 501}, {"max_list_items": 0}]
)
def test_limits_out_of_range_are_refused(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        InputLimits(**fields)
