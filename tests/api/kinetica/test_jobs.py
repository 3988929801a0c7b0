"""Kinetica job API, end to end in-process: the real app over a real database (SQLite, PostgreSQL).

The Avro schemas below are copied from the wire spec (shared/specs/kinetica-wire.md, the client's
own strings), not imported from jobstore, so these tests hold the server to the spec. Requests are
built the way the official `gpudb` client builds them:

* JSON wire: `json.dumps` of the record, keys in schema order, Avro `bytes` as Latin-1 strings.
* BINARY wire: schemaless Avro; SNAPPY wire: raw-block snappy around that Avro.

Every response goes through `Api.post`, which checks the `gpudb_response` envelope (§2) in the
client's encoding before a test looks at it.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx
import pytest
import snappy
import sqlalchemy as sa

from jobstore.api.kinetica import KineticaConfig
from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.executor.runner import Executor
from jobstore.store import Database

# -- schemas, from the spec ------------------------------------------------------------------

GPUDB_RESPONSE = fastavro.parse_schema(
    json.loads("""
{"type":"record","name":"gpudb_response","fields":[
  {"name":"status","type":"string"},
  {"name":"message","type":"string"},
  {"name":"data_type","type":"string"},
  {"name":"data","type":"bytes"},
  {"name":"data_str","type":"string"}]}
""")
)

_SPEC_SCHEMAS = {
    "/create/job": (
        """{"type":"record","name":"create_job_request","fields":[
  {"name":"endpoint","type":"string"},
  {"name":"request_encoding","type":"string"},
  {"name":"data","type":"bytes"},
  {"name":"data_str","type":"string"},
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"create_job_response","fields":[
  {"name":"job_id","type":"long"},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
    "/get/job": (
        """{"type":"record","name":"get_job_request","fields":[
  {"name":"job_id","type":"long"},
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"get_job_response","fields":[
  {"name":"endpoint","type":"string"},
  {"name":"job_status","type":"string"},
  {"name":"running","type":"boolean"},
  {"name":"progress","type":"int"},
  {"name":"successful","type":"boolean"},
  {"name":"response_encoding","type":"string"},
  {"name":"job_response","type":"bytes"},
  {"name":"job_response_str","type":"string"},
  {"name":"status_map","type":{"type":"map","values":"string"}},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
    "/admin/show/jobs": (
        """{"type":"record","name":"admin_show_jobs_request","fields":[
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"admin_show_jobs_response","fields":[
  {"name":"job_id","type":{"type":"array","items":"long"}},
  {"name":"status","type":{"type":"array","items":"string"}},
  {"name":"endpoint_name","type":{"type":"array","items":"string"}},
  {"name":"time_received","type":{"type":"array","items":"long"}},
  {"name":"auth_id","type":{"type":"array","items":"string"}},
  {"name":"source_ip","type":{"type":"array","items":"string"}},
  {"name":"query_text","type":{"type":"array","items":"string"}},
  {"name":"user_data","type":{"type":"array","items":"string"}},
  {"name":"flags","type":{"type":"array","items":"string"}},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
    "/admin/alter/jobs": (
        """{"type":"record","name":"admin_alter_jobs_request","fields":[
  {"name":"job_ids","type":{"type":"array","items":"long"}},
  {"name":"action","type":"string"},
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"admin_alter_jobs_response","fields":[
  {"name":"job_ids","type":{"type":"array","items":"long"}},
  {"name":"action","type":"string"},
  {"name":"status","type":{"type":"array","items":"string"}},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
    "/show/system/status": (
        """{"type":"record","name":"show_system_status_request","fields":[
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"show_system_status_response","fields":[
  {"name":"status_map","type":{"type":"map","values":"string"}},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
    "/show/system/properties": (
        """{"type":"record","name":"show_system_properties_request","fields":[
  {"name":"options","type":{"type":"map","values":"string"}}]}""",
        """{"type":"record","name":"show_system_properties_response","fields":[
  {"name":"property_map","type":{"type":"map","values":"string"}},
  {"name":"info","type":{"type":"map","values":"string"}}]}""",
    ),
}

# endpoint -> (request schema, response schema), each the raw definition
SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    ep: (json.loads(req), json.loads(rsp)) for ep, (req, rsp) in _SPEC_SCHEMAS.items()
}

# The built-in /sleep endpoint's own records (jobstore's documented payload for /sleep).
SLEEP_REQUEST = {
    "type": "record",
    "name": "sleep_request",
    "fields": [{"name": "seconds", "type": "double"}],
}
SLEEP_RESPONSE = {
    "type": "record",
    "name": "sleep_response",
    "fields": [{"name": "slept", "type": "double"}],
}

CONTENT_TYPES = {
    "json": "application/json",
    "binary": "application/octet-stream",
    "snappy": "application/x-snappy",
}
WIRES = list(CONTENT_TYPES)
ENVELOPE_KEYS = {"status", "message", "data_type", "data", "data_str"}
ACTIVE = ("queued", "running")


def avro_write(schema: dict[str, Any], record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def avro_read(schema: dict[str, Any], data: bytes) -> Any:
    """Decode and insist every byte was used (no trailing garbage in a server answer)."""
    buf = io.BytesIO(data)
    value = fastavro.schemaless_reader(buf, fastavro.parse_schema(schema), None)
    assert buf.tell() == len(data), f"{len(data) - buf.tell()} trailing bytes after {schema}"
    return value


def _bytes_fields(schema: dict[str, Any]) -> set[str]:
    return {f["name"] for f in schema["fields"] if f["type"] == "bytes"}


def encode_request(path: str, record: dict[str, Any], wire: str) -> bytes:
    """A request body as the official client sends it in this wire encoding."""
    schema = SCHEMAS[path][0]
    if wire == "json":
        as_json = {}
        for f in schema["fields"]:  # schema field order, as the client does
            value = record[f["name"]]
            as_json[f["name"]] = value.decode("latin-1") if isinstance(value, bytes) else value
        return json.dumps(as_json).encode()
    body = avro_write(schema, record)
    return snappy.compress(body) if wire == "snappy" else body


@dataclass
class Reply:
    http_status: int
    envelope: dict[str, Any]
    record: dict[str, Any] | None  # the inner *_response, bytes fields as bytes in every wire
    content_type: str

    @property
    def ok(self) -> bool:
        return self.envelope["status"] == "OK"

    @property
    def message(self) -> str:
        return str(self.envelope["message"])


def decode_reply(response: httpx.Response, wire: str, rsp_schema: dict[str, Any] | None) -> Reply:
    """Decode the envelope as the client would, checking §2's rules on the way."""
    content = response.content
    if wire == "json":
        envelope = json.loads(content)
        assert isinstance(envelope, dict), content
        assert set(envelope) == ENVELOPE_KEYS, envelope
        assert isinstance(envelope["data_str"], str), envelope
        assert envelope["data"] == "", envelope
    else:
        # SNAPPY answers are plain Avro, never compressed (§2.2): decode the raw body.
        envelope = avro_read(GPUDB_RESPONSE, content)
        assert envelope["data_str"] == "", envelope
    assert envelope["status"] in ("OK", "ERROR"), envelope
    assert all(isinstance(envelope[k], str) for k in ("status", "message", "data_type"))
    record = None
    if envelope["status"] == "ERROR":
        assert envelope["data_type"] == "none", envelope
        assert envelope["message"], envelope
        assert envelope["data_str"] == ""
        assert envelope["data"] in ("", b""), envelope
    else:
        assert envelope["message"] == "", envelope
        if rsp_schema is not None:
            assert envelope["data_type"] == rsp_schema["name"], envelope
            if wire == "json":
                raw = json.loads(envelope["data_str"])
                assert isinstance(raw, dict), envelope
                assert list(raw) == [f["name"] for f in rsp_schema["fields"]], raw
                record = dict(raw)
                for name in _bytes_fields(rsp_schema):
                    assert isinstance(record[name], str), record
                    record[name] = record[name].encode("latin-1")  # Latin-1, never base64/utf-8
            else:
                record = avro_read(rsp_schema, envelope["data"])
    return Reply(response.status_code, envelope, record, response.headers.get("content-type", ""))


class Api:
    """A Kinetica client speaking one wire encoding to the in-process app."""

    def __init__(self, client: httpx.AsyncClient, wire: str = "json") -> None:
        self.client = client
        self.wire = wire

    def using(self, wire: str) -> Api:
        return Api(self.client, wire)

    async def post(self, path: str, body: bytes | Any, *, rsp: str | None = None) -> Reply:
        response = await self.client.post(
            path,
            content=body,
            headers={"Content-Type": CONTENT_TYPES[self.wire], "Accept": CONTENT_TYPES[self.wire]},
        )
        assert response.status_code in (200, 400), (response.status_code, response.content)
        schema = SCHEMAS[rsp][1] if rsp is not None else None
        reply = decode_reply(response, self.wire, schema)
        assert (reply.http_status == 200) == reply.ok, reply
        return reply

    async def call(self, path: str, record: dict[str, Any]) -> Reply:
        return await self.post(path, encode_request(path, record, self.wire), rsp=path)

    async def ok(self, path: str, record: dict[str, Any]) -> dict[str, Any]:
        reply = await self.call(path, record)
        assert reply.http_status == 200 and reply.ok, reply.envelope
        assert reply.record is not None
        return reply.record

    async def error(self, path: str, record: dict[str, Any]) -> str:
        reply = await self.call(path, record)
        assert reply.http_status == 400 and not reply.ok, reply.envelope
        return reply.message

    # -- the job calls ----------------------------------------------------------------------

    @staticmethod
    def create_record(
        endpoint: str,
        encoding: str,
        payload: bytes | str,
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if isinstance(payload, str):
            data, data_str = b"", payload
        else:
            data, data_str = payload, ""
        return {
            "endpoint": endpoint,
            "request_encoding": encoding,
            "data": data,
            "data_str": data_str,
            "options": dict(options or {}),
        }

    async def create(
        self,
        endpoint: str,
        encoding: str,
        payload: bytes | str,
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return await self.ok(
            "/create/job", self.create_record(endpoint, encoding, payload, options)
        )

    async def create_error(
        self,
        endpoint: str,
        encoding: str,
        payload: bytes | str,
        options: dict[str, str] | None = None,
    ) -> str:
        return await self.error(
            "/create/job", self.create_record(endpoint, encoding, payload, options)
        )

    async def get(self, job_id: int, tag: str | None = None) -> dict[str, Any]:
        options = {"job_tag": tag} if tag is not None else {}
        return await self.ok("/get/job", {"job_id": job_id, "options": options})

    async def get_error(self, job_id: int, tag: str | None = None) -> str:
        options = {"job_tag": tag} if tag is not None else {}
        return await self.error("/get/job", {"job_id": job_id, "options": options})

    async def show(self, **options: str) -> dict[str, Any]:
        return await self.ok("/admin/show/jobs", {"options": options})

    async def alter(
        self, job_ids: list[int], action: str = "cancel", **options: str
    ) -> dict[str, Any]:
        return await self.ok(
            "/admin/alter/jobs", {"job_ids": job_ids, "action": action, "options": options}
        )


@dataclass
class Env:
    db: Database
    executor: Executor
    service: JobService
    api: Api  # JSON wire
    client: httpx.AsyncClient

    async def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self.db.reading() as conn:
            result = await conn.execute(sa.text(query), params)
            return [tuple(r) for r in result]

    async def job_rows(self) -> list[tuple[Any, ...]]:
        return await self.sql("SELECT job_id, job_tag, status FROM jobs ORDER BY job_id")


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _env(db: Database, config: KineticaConfig | None = None) -> AsyncIterator[Env]:
    node = node_for_tests(db, node_id="test", lease_seconds=30)
    executor, service = node.executor, node.jobs
    app = node.app(run_background=False, kinetica=config or KineticaConfig())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(db, executor, service, Api(client), client)
    finally:
        await executor.stop()


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for e in _env(db):
        yield e


@pytest.fixture
async def small_env(db: Database) -> AsyncIterator[Env]:
    """The app with a 1 KiB request body limit."""
    async for e in _env(db, KineticaConfig(max_body_bytes=1024)):
        yield e


def assert_create_info(created: dict[str, Any], tag: str | None = None) -> None:
    assert isinstance(created["job_id"], int) and created["job_id"] > 0, created
    assert set(created["info"]) == {"job_tag", "query_id"}, created
    uuid.UUID(created["info"]["query_id"])
    if tag is not None:
        assert created["info"]["job_tag"] == tag, created
    else:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,128}", created["info"]["job_tag"]), created


def assert_running(got: dict[str, Any], endpoint: str, family: str, tag: str) -> None:
    assert got["endpoint"] == endpoint
    assert got["job_status"] == "RUNNING"
    assert got["running"] is True
    assert got["successful"] is False
    assert got["progress"] == 0
    assert got["response_encoding"] == family
    assert got["job_response"] == b""
    assert got["job_response_str"] == ""
    assert got["status_map"] == {}
    assert got["info"]["job_tag"] == tag


def assert_done(got: dict[str, Any], endpoint: str, family: str) -> None:
    assert got["endpoint"] == endpoint
    assert got["job_status"] == "DONE"
    assert got["running"] is False
    assert got["successful"] is True
    assert got["progress"] == 100
    assert got["response_encoding"] == family


ALL_BYTES = bytes(range(256)) + b"\x80\xff\x00tail"


# -- create / get round trips ----------------------------------------------------------------


async def test_echo_json_round_trip(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    text = '{"a": [1, 2.5, "x\\u00e9\u20ac"], "b": null, "c": "\u00ff"}'
    created = await api.create("/echo", "json", text, {"job_tag": "echo-json"})
    assert_create_info(created, "echo-json")
    job_id = created["job_id"]

    before = await api.get(job_id)
    assert_running(before, "/echo", "json", "echo-json")

    assert await env.executor.run_once() == [job_id]
    got = await api.get(job_id)
    assert_done(got, "/echo", "json")
    assert got["job_response_str"] == text
    assert got["job_response"] == b""
    assert got["status_map"] == {}
    assert got["info"]["job_tag"] == "echo-json"


@pytest.mark.parametrize("request_encoding", ["binary", "snappy"])
async def test_echo_bytes_round_trip(env: Env, wire: str, request_encoding: str) -> None:
    """Bytes >= 0x80 survive: Latin-1 strings in JSON, raw bytes in Avro; snappy is unwrapped."""
    api = env.api.using(wire)
    data = snappy.compress(ALL_BYTES) if request_encoding == "snappy" else ALL_BYTES
    created = await api.create("/echo", request_encoding, data, {"job_tag": "echo-bytes"})
    assert_create_info(created, "echo-bytes")
    job_id = created["job_id"]
    assert_running(await api.get(job_id), "/echo", "binary", "echo-bytes")

    assert await env.executor.run_once() == [job_id]
    got = await api.get(job_id)
    assert_done(got, "/echo", "binary")
    assert got["job_response"] == ALL_BYTES  # the plain bytes, not snappy
    assert got["job_response_str"] == ""


async def test_echo_bytes_as_latin1_string_in_json(env: Env) -> None:
    """The exact JSON text: bytes go out as chr(b) code points, and come back the same way."""
    body = json.dumps(
        {
            "endpoint": "/echo",
            "request_encoding": "binary",
            "data": "\u0000\u0080\u00e9\u00ff",
            "data_str": "",
            "options": {"job_tag": "latin"},
        }
    ).encode()
    assert b"\\u00ff" in body  # json.dumps escapes, as the client does
    created = await env.api.post("/create/job", body, rsp="/create/job")
    assert created.ok and created.record is not None
    await env.executor.run_once()
    reply = await env.client.post(
        "/get/job",
        content=json.dumps({"job_id": 0, "options": {"job_tag": "latin"}}),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200
    inner = json.loads(json.loads(reply.content)["data_str"])
    assert inner["job_response"] == "\u0000\u0080\u00e9\u00ff"
    assert inner["job_response_str"] == ""


async def test_create_without_tag_generates_one(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/echo", "json", '"x"')
    assert_create_info(created)
    tag = created["info"]["job_tag"]
    got = await api.get(0, tag)
    assert_running(got, "/echo", "json", tag)
    again = await api.create("/echo", "json", '"x"')
    assert again["job_id"] != created["job_id"]  # no tag: no dedupe
    assert again["info"]["job_tag"] != tag


async def test_sleep_json(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "nap"})
    assert_create_info(created, "nap")
    assert_running(await api.get(created["job_id"]), "/sleep", "json", "nap")
    await env.executor.run_once()
    got = await api.get(created["job_id"])
    assert_done(got, "/sleep", "json")
    assert json.loads(got["job_response_str"]) == {"slept": 0.0}
    assert got["job_response"] == b""


@pytest.mark.parametrize("request_encoding", ["binary", "snappy"])
async def test_sleep_avro(env: Env, wire: str, request_encoding: str) -> None:
    api = env.api.using(wire)
    data = avro_write(SLEEP_REQUEST, {"seconds": 0.0})
    if request_encoding == "snappy":
        data = snappy.compress(data)
    created = await api.create("/sleep", request_encoding, data, {"job_tag": "nap-avro"})
    assert_running(await api.get(created["job_id"]), "/sleep", "binary", "nap-avro")
    await env.executor.run_once()
    got = await api.get(created["job_id"])
    assert_done(got, "/sleep", "binary")
    assert got["job_response_str"] == ""
    assert avro_read(SLEEP_RESPONSE, got["job_response"]) == {"slept": 0.0}


async def test_sleep_out_of_range_ends_error(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/sleep", "json", '{"seconds": -1}')
    await env.executor.run_once()
    got = await api.get(created["job_id"])
    assert got["job_status"] == "ERROR"
    assert got["successful"] is False and got["running"] is False
    assert "seconds must be between 0 and" in got["status_map"]["error_message"]


async def test_fail_job_reports_error(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/fail", "json", '{"message": "boom \u00e9 42"}', {"job_tag": "f"})
    await env.executor.run_once()
    got = await api.get(created["job_id"])  # a failed job is still an OK envelope
    assert got["endpoint"] == "/fail"
    assert got["job_status"] == "ERROR"
    assert got["running"] is False
    assert got["successful"] is False
    assert got["status_map"] == {"error_message": "boom \u00e9 42"}
    assert got["job_response"] == b""
    assert got["job_response_str"] == ""
    assert got["info"]["job_tag"] == "f"
    # by tag too
    assert (await api.get(0, "f"))["job_status"] == "ERROR"


async def test_fail_binary_request_carries_its_message(env: Env) -> None:
    schema = {
        "type": "record",
        "name": "fail_request",
        "fields": [{"name": "message", "type": "string"}],
    }
    created = await env.api.create("/fail", "binary", avro_write(schema, {"message": "disk full"}))
    await env.executor.run_once()
    got = await env.api.get(created["job_id"])
    assert got["job_status"] == "ERROR"
    assert got["status_map"] == {"error_message": "disk full"}
    message = await env.api.create_error("/fail", "binary", b"\x00\xff")
    assert "fail_request" in message


async def test_response_content_type_follows_wire(env: Env, wire: str) -> None:
    """§1: application/json for JSON, application/octet-stream for BINARY and SNAPPY."""
    api = env.api.using(wire)
    expected = "application/json" if wire == "json" else "application/octet-stream"
    ok = await api.call("/show/system/status", {"options": {}})
    bad = await api.call("/get/job", {"job_id": 424242, "options": {}})
    for reply in (ok, bad):
        assert reply.content_type.split(";")[0] == expected


async def test_request_time_header_parses_as_float_if_sent(env: Env) -> None:
    response = await env.client.post(
        "/show/system/status",
        content=b'{"options": {}}',
        headers={"Content-Type": "application/json"},
    )
    if "x-request-time-secs" in response.headers:
        float(response.headers["x-request-time-secs"])
    assert response.status_code == 200


# -- errors ----------------------------------------------------------------------------------

SLEEP_BAD_AVRO = b"\x01\x02"  # 2 bytes: a double needs 8

# (request to /create/job, a fragment the message must contain); valid in every wire encoding
CREATE_ERRORS = [
    pytest.param(
        Api.create_record("/nope", "json", "{}"), "unknown endpoint '/nope'", id="unknown-endpoint"
    ),
    pytest.param(
        Api.create_record("/echo", "avro", b"x"), "request_encoding 'avro'", id="bad-encoding"
    ),
    pytest.param(
        Api.create_record("/echo", "json", '"x"', {"job_tag": "has space"}),
        "job_tag 'has space'",
        id="tag-with-space",
    ),
    pytest.param(
        Api.create_record("/echo", "json", '"x"', {"job_tag": "t" * 129}),
        "invalid job_tag",
        id="tag-too-long",
    ),
    pytest.param(
        Api.create_record("/echo", "json", '"x"', {"job_tag": "a/b"}),
        "invalid job_tag",
        id="tag-with-slash",
    ),
    pytest.param(
        {**Api.create_record("/echo", "json", '"x"'), "data": b"\x01"},
        "data_str",
        id="json-with-data",
    ),
    pytest.param(
        {**Api.create_record("/echo", "binary", b"x"), "data_str": "x"},
        "takes its request in data, not data_str",
        id="binary-with-data_str",
    ),
    pytest.param(
        {**Api.create_record("/echo", "snappy", snappy.compress(b"x")), "data_str": "x"},
        "takes its request in data, not data_str",
        id="snappy-with-data_str",
    ),
    pytest.param(
        Api.create_record("/sleep", "binary", SLEEP_BAD_AVRO),
        "sleep_request",
        id="binary-not-sleep-avro",
    ),
    pytest.param(
        Api.create_record("/sleep", "binary", avro_write(SLEEP_REQUEST, {"seconds": 1.0}) + b"\0"),
        "trailing",
        id="binary-sleep-trailing-byte",
    ),
    pytest.param(
        Api.create_record("/sleep", "snappy", snappy.compress(SLEEP_BAD_AVRO)),
        "sleep_request",
        id="snappy-not-sleep-avro",
    ),
    pytest.param(
        Api.create_record("/echo", "snappy", b"this is not snappy data"),
        "invalid snappy data",
        id="snappy-not-snappy",
    ),
    pytest.param(
        Api.create_record("/echo", "snappy", b""),
        "invalid snappy data",
        id="snappy-empty",
    ),
    pytest.param(
        Api.create_record(
            "/echo", "snappy", b"\xff\x06\x00\x00sNaPpY" + snappy.compress(b"framed?")
        ),
        "invalid snappy data",
        id="snappy-framing-format",
    ),
    pytest.param(
        Api.create_record("/echo", "json", "{not json"),
        "data_str is not valid JSON",
        id="json-data_str-not-json",
    ),
    pytest.param(
        Api.create_record("/fail", "json", "{not json"),
        "data_str is not valid JSON",
        id="fail-json-data_str-not-json",
    ),
    pytest.param(
        Api.create_record("/sleep", "json", "{not json"),
        "data_str is not valid JSON",
        id="sleep-json-data_str-not-json",
    ),
    pytest.param(
        Api.create_record("/sleep", "json", ""),
        "data_str is not valid JSON",
        id="json-data_str-empty",
    ),
    pytest.param(
        Api.create_record("/sleep", "json", '{"seconds": "x"}'),
        "sleep_request",
        id="sleep-seconds-string",
    ),
    pytest.param(
        Api.create_record("/sleep", "json", '{"seconds": true}'),
        "sleep_request",
        id="sleep-seconds-bool",
    ),
    pytest.param(
        Api.create_record("/sleep", "json", "[0]"),
        "sleep_request",
        id="sleep-not-object",
    ),
    pytest.param(
        Api.create_record("/echo", "json", '"x"', {"remove_job_on_complete": "maybe"}),
        "remove_job_on_complete",
        id="remove-maybe",
    ),
]


@pytest.mark.parametrize(("record", "fragment"), CREATE_ERRORS)
async def test_create_errors(env: Env, record: dict[str, Any], fragment: str) -> None:
    """Each bad create is refused in every wire encoding, naming the problem."""
    for wire in WIRES:
        reply = await env.api.using(wire).call("/create/job", record)
        assert reply.http_status == 400 and not reply.ok, (wire, reply.envelope)
        assert fragment in reply.message, (wire, reply.message)
    assert await env.job_rows() == []  # nothing was stored


async def test_create_error_messages_are_specific(env: Env) -> None:
    """A few complete messages, so a vague rewording is caught."""
    msg = await env.api.create_error("/echo", "avro", b"x")
    assert "unknown request_encoding 'avro'" in msg and "binary, json or snappy" in msg
    msg = await env.api.create_error("/echo", "json", '"x"', {"remove_job_on_complete": "maybe"})
    assert "'remove_job_on_complete'" in msg and "'maybe'" in msg
    msg = await env.api.create_error("/nope", "json", "{}")
    assert "/echo" in msg and "/sleep" in msg  # names what exists


async def test_tag_of_128_chars_is_valid(env: Env) -> None:
    tag = "T_-9" * 32
    assert len(tag) == 128
    created = await env.api.create("/echo", "json", '"x"', {"job_tag": tag})
    assert created["info"]["job_tag"] == tag
    assert (await env.api.get(0, tag))["info"]["job_tag"] == tag


async def test_get_unknown_id_and_tag(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    msg = await api.get_error(987654)
    assert "not found" in msg.lower() and "987654" in msg
    msg = await api.get_error(0, "no-such-tag")
    assert "not found" in msg.lower() and "no-such-tag" in msg
    # a real job does not make an unknown tag resolve through its id
    created = await api.create("/echo", "json", '"x"', {"job_tag": "real"})
    msg = await api.get_error(created["job_id"], "other-tag")
    assert "other-tag" in msg


JSON_BODY_ERRORS = [
    pytest.param("/create/job", b"{not json", "not valid JSON", id="create-not-json"),
    pytest.param("/get/job", b"", "not valid JSON", id="get-empty"),
    pytest.param("/get/job", b"\xff\xfe{}", "not valid JSON", id="get-not-utf8"),
    pytest.param("/create/job", b"[1, 2]", "JSON object", id="create-array"),
    pytest.param("/get/job", b'"job"', "JSON object", id="get-string"),
    pytest.param("/get/job", b"null", "JSON object", id="get-null"),
    pytest.param(
        "/get/job", b'{"job_id": "7", "options": {}}', "'job_id' must be an integer", id="id-str"
    ),
    pytest.param(
        "/get/job", b'{"job_id": true, "options": {}}', "'job_id' must be an integer", id="id-bool"
    ),
    pytest.param(
        "/get/job", b'{"job_id": 1.5, "options": {}}', "'job_id' must be an integer", id="id-frac"
    ),
    pytest.param("/get/job", b'{"job_id": 1e30, "options": {}}', "'job_id'", id="id-huge"),
    pytest.param("/get/job", b'{"job_id": NaN, "options": {}}', "'job_id'", id="id-nan"),
    pytest.param(
        "/get/job",
        b'{"job_id": 1, "options": []}',
        "'options' must be an object",
        id="options-list",
    ),
    pytest.param(
        "/get/job",
        b'{"job_id": 1, "options": {"job_tag": null}}',
        "options.job_tag",
        id="option-null",
    ),
    pytest.param(
        "/create/job",
        b'{"endpoint": 5, "request_encoding": "json", "data": "", "data_str": "1", "options": {}}',
        "'endpoint' must be a string",
        id="endpoint-int",
    ),
    pytest.param(
        "/create/job",
        json.dumps(
            {
                "endpoint": "/echo",
                "request_encoding": "binary",
                "data": "\u0100",
                "data_str": "",
                "options": {},
            }
        ).encode(),
        "Latin-1",
        id="data-not-latin1",
    ),
    pytest.param(
        "/create/job",
        b'{"endpoint": "/echo", "request_encoding": "binary", "data": 7, '
        b'"data_str": "", "options": {}}',
        "'data'",
        id="data-int",
    ),
    pytest.param(
        "/admin/alter/jobs",
        b'{"job_ids": 5, "action": "cancel", "options": {}}',
        "'job_ids' must be an array",
        id="job_ids-not-array",
    ),
    pytest.param(
        "/admin/alter/jobs",
        b'{"job_ids": ["5"], "action": "cancel", "options": {}}',
        "'job_ids' must be an integer",
        id="job_ids-strings",
    ),
]


@pytest.mark.parametrize(("path", "body", "fragment"), JSON_BODY_ERRORS)
async def test_json_body_errors(env: Env, path: str, body: bytes, fragment: str) -> None:
    reply = await env.api.post(path, body)
    assert reply.http_status == 400
    assert reply.envelope["status"] == "ERROR"
    assert reply.envelope["data_type"] == "none"
    assert fragment in reply.message
    assert await env.job_rows() == []


async def test_json_options_booleans_and_numbers_become_strings(env: Env) -> None:
    """§4.1: the client turns bools into 'true'/'false'; be lenient about JSON scalars too."""
    body = json.dumps(
        {
            "endpoint": "/echo",
            "request_encoding": "json",
            "data": "",
            "data_str": '"x"',
            "options": {"job_tag": "opt", "remove_job_on_complete": False},
        }
    ).encode()
    reply = await env.api.post("/create/job", body, rsp="/create/job")
    assert reply.ok and reply.record is not None
    assert reply.record["info"]["job_tag"] == "opt"


async def test_json_missing_fields_take_defaults(env: Env) -> None:
    """Only `job_id` given: options default to {} and the job is looked up by id."""
    created = await env.api.create("/echo", "json", '"x"')
    reply = await env.api.post(
        "/get/job", json.dumps({"job_id": created["job_id"]}).encode(), rsp="/get/job"
    )
    assert reply.ok and reply.record is not None
    assert reply.record["job_status"] == "RUNNING"


async def test_unknown_kinetica_path_is_400_not_404(env: Env, wire: str) -> None:
    """404 is a failover trigger (§2.4): an unknown endpoint must be an ERROR envelope."""
    api = env.api.using(wire)
    body = encode_request("/show/system/status", {"options": {}}, wire)
    for path in ("/execute/sql", "/show/table", "/", "/create/jobs", "/get/job/extra", "/getjob"):
        reply = await api.post(path, body)
        assert reply.http_status == 400, path
        assert "unknown Kinetica endpoint" in reply.message, reply.message
        assert repr(path) in reply.message, reply.message


async def test_unknown_content_type_is_answered_as_json(env: Env) -> None:
    for ctype in (None, "text/plain", "application/json; charset=utf-8"):
        headers = {"Content-Type": ctype} if ctype else {}
        response = await env.client.post(
            "/show/system/status", content=b'{"options": {}}', headers=headers
        )
        assert response.status_code == 200
        assert decode_reply(response, "json", SCHEMAS["/show/system/status"][1]).ok


async def test_content_type_parameters_and_case(env: Env) -> None:
    response = await env.client.post(
        "/show/system/status",
        content=b"\x00",
        headers={"Content-Type": "Application/Octet-Stream; charset=binary"},
    )
    assert response.status_code == 200
    assert decode_reply(response, "binary", SCHEMAS["/show/system/status"][1]).ok


# -- idempotency -----------------------------------------------------------------------------


async def test_same_tag_same_request_returns_same_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    first = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"})
    second = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"})
    assert second == first  # same job_id, same info
    # a retry in another wire encoding is still the same request
    other_wire = "json" if wire != "json" else "binary"
    third = await api.using(other_wire).create(
        "/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"}
    )
    assert third == first
    assert await env.job_rows() == [(first["job_id"], "idem", "queued")]
    # once it has run, the identical create still answers the same job
    await env.executor.run_once()
    assert await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"}) == first
    assert await env.executor.run_once() == []


async def test_concurrent_identical_creates_make_one_job(env: Env, wire: str) -> None:
    """The client re-sends a create on 502/503/timeouts; retries may overlap."""
    api = env.api.using(wire)
    record = Api.create_record("/echo", "json", '{"n": 1}', {"job_tag": "race"})
    replies = await asyncio.gather(*(api.call("/create/job", record) for _ in range(8)))
    assert all(r.ok for r in replies), [r.message for r in replies]
    ids = {r.record["job_id"] for r in replies if r.record is not None}
    assert len(ids) == 1
    assert await env.job_rows() == [(ids.pop(), "race", "queued")]


async def test_concurrent_conflicting_creates_one_wins(env: Env) -> None:
    records = [
        Api.create_record("/echo", "json", f'{{"n": {i}}}', {"job_tag": "race2"}) for i in range(6)
    ]
    replies = await asyncio.gather(*(env.api.call("/create/job", r) for r in records))
    winners = [i for i, r in enumerate(replies) if r.ok]
    assert len(winners) == 1, [r.message for r in replies]
    winner = replies[winners[0]].record
    assert winner is not None
    for r in replies:
        if not r.ok:
            assert r.http_status == 400
            assert "'race2'" in r.message and str(winner["job_id"]) in r.message
    await env.executor.run_once()
    got = await env.api.get(winner["job_id"])
    assert got["job_response_str"] == f'{{"n": {winners[0]}}}'


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(("/echo", "binary", b"\x00\x80\xfe"), id="payload"),
        # Avro fail_request {"message": "\x80"}: the same tag, another endpoint
        pytest.param(("/fail", "binary", b"\x04\xc2\x80"), id="endpoint"),
        pytest.param(("/echo", "snappy", snappy.compress(b"\x00\x80\xff")), id="encoding"),
        pytest.param(("/echo", "json", '"\\u0000\\u0080\\u00ff"'), id="family"),
    ],
)
async def test_same_tag_different_request_is_refused(
    env: Env, wire: str, changed: tuple[str, str, bytes | str]
) -> None:
    api = env.api.using(wire)
    first = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "dup"})
    msg = await api.create_error(*changed, {"job_tag": "dup"})
    assert "'dup'" in msg
    assert str(first["job_id"]) in msg
    assert await env.job_rows() == [(first["job_id"], "dup", "queued")]


async def test_remove_on_complete_removes_job_and_leaves_tombstone(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    options = {"job_tag": "gone", "remove_job_on_complete": "true"}
    created = await api.create("/echo", "json", '{"k": 1}', options)
    job_id = created["job_id"]
    assert_running(await api.get(job_id), "/echo", "json", "gone")
    await env.executor.run_once()

    for msg in (await api.get_error(job_id), await api.get_error(0, "gone")):
        assert f"Job {job_id}" in msg
        assert "'gone'" in msg
        assert "finished (DONE)" in msg
        assert "removed because remove_job_on_complete was set" in msg
    # tag wins over a wrong id here too
    assert "finished (DONE)" in await api.get_error(job_id + 1000, "gone")

    assert await env.sql("SELECT job_id FROM jobs WHERE job_tag = 'gone'") == []
    assert await env.sql("SELECT job_id, job_tag, endpoint, status FROM job_tombstones") == [
        (job_id, "gone", "/echo", "done")
    ]

    # the client's retry of the same create answers the same job, and nothing runs again
    again = await api.create("/echo", "json", '{"k": 1}', options)
    assert again == created
    assert await env.job_rows() == []
    assert await env.executor.run_once() == []
    # a different request with that tag is refused, naming the tag
    msg = await api.create_error("/echo", "json", '{"k": 2}', options)
    assert "'gone'" in msg
    assert await env.job_rows() == []

    # listing (even finished jobs) does not show it, and cancelling it says already done
    shown = await api.show(show_async_jobs="true")
    assert shown["job_id"] == []
    altered = await api.alter([job_id])
    assert altered["status"] == ["already_done"]


async def test_remove_on_complete_after_error_and_cancel(env: Env) -> None:
    api = env.api
    failed = await api.create(
        "/fail", "json", '{"message": "x"}', {"job_tag": "f1", "remove_job_on_complete": "TRUE"}
    )
    await env.executor.run_once()
    assert "finished (ERROR)" in await api.get_error(failed["job_id"])
    cancelled = await api.create(
        "/echo", "json", '"x"', {"job_tag": "c1", "remove_job_on_complete": "true"}
    )
    assert (await api.alter([cancelled["job_id"]]))["status"] == ["cancelled"]
    assert "finished (CANCELLED)" in await api.get_error(0, "c1")
    assert await env.job_rows() == []
    stones = await env.sql("SELECT job_id, job_tag, status FROM job_tombstones ORDER BY job_id")
    assert stones == [(failed["job_id"], "f1", "error"), (cancelled["job_id"], "c1", "cancelled")]


async def test_remove_on_complete_false_keeps_job(env: Env) -> None:
    created = await env.api.create(
        "/echo", "json", '"k"', {"job_tag": "kept", "remove_job_on_complete": "false"}
    )
    await env.executor.run_once()
    assert (await env.api.get(created["job_id"]))["job_status"] == "DONE"
    assert await env.sql("SELECT job_id FROM job_tombstones") == []


async def test_get_by_tag_wins_over_job_id(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    a = await api.create("/echo", "json", '"a"', {"job_tag": "tag-a"})
    b = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "tag-b"})
    got = await api.get(b["job_id"], "tag-a")
    assert got["endpoint"] == "/echo"
    assert got["info"]["job_tag"] == "tag-a"
    got = await api.get(0, "tag-b")
    assert got["endpoint"] == "/sleep"
    got = await api.get(-5, "tag-a")
    assert got["info"]["job_tag"] == "tag-a"
    # an empty job_tag option means "by id"
    got = await api.ok("/get/job", {"job_id": a["job_id"], "options": {"job_tag": ""}})
    assert got["info"]["job_tag"] == "tag-a"


# -- listing ---------------------------------------------------------------------------------

SHOW_ARRAYS = [
    "job_id",
    "status",
    "endpoint_name",
    "time_received",
    "auth_id",
    "source_ip",
    "query_text",
    "user_data",
    "flags",
]


def _check_parallel(shown: dict[str, Any]) -> int:
    lengths = {name: len(shown[name]) for name in SHOW_ARRAYS}
    assert len(set(lengths.values())) == 1, lengths
    return len(shown["job_id"])


async def test_show_jobs(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    before_ms = int(time.time() * 1000)
    done = await api.create("/echo", "json", '"1"', {"job_tag": "s1"})
    await env.executor.run_once()
    q1 = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "s2"})
    q2 = await api.create("/echo", "binary", b"\x01", {"job_tag": "s3"})
    after_ms = int(time.time() * 1000)

    active = await api.show()
    assert _check_parallel(active) == 2
    assert active["job_id"] == [q1["job_id"], q2["job_id"]]  # oldest first
    assert active["status"] == ["RUNNING", "RUNNING"]
    assert active["endpoint_name"] == ["/sleep", "/echo"]

    everything = await api.show(show_async_jobs="true")
    assert _check_parallel(everything) == 3
    assert everything["job_id"] == [done["job_id"], q1["job_id"], q2["job_id"]]
    assert everything["status"] == ["DONE", "RUNNING", "RUNNING"]
    assert everything["endpoint_name"] == ["/echo", "/sleep", "/echo"]
    times = everything["time_received"]
    assert all(before_ms - 1000 <= t <= after_ms + 1000 for t in times), (before_ms, times)
    assert times == sorted(times)
    assert everything["source_ip"] == ["127.0.0.1"] * 3
    assert everything["user_data"] == ["s1", "s2", "s3"]  # tags, in job_id order
    assert everything["info"]["job_tag"] == "s1,s2,s3"

    assert (await api.show(show_async_jobs="false"))["job_id"] == active["job_id"]
    msg = await api.error("/admin/show/jobs", {"options": {"show_async_jobs": "perhaps"}})
    assert "show_async_jobs" in msg


async def test_show_jobs_empty_and_limit(env: Env) -> None:
    empty = await env.api.show(show_async_jobs="true")
    assert _check_parallel(empty) == 0
    ids = [(await env.api.create("/echo", "json", f'"{i}"'))["job_id"] for i in range(3)]
    limited = await env.api.show(limit="2")
    assert limited["job_id"] == ids[1:]  # the newest two, oldest first
    assert "limit" in await env.api.error("/admin/show/jobs", {"options": {"limit": "0"}})
    assert "limit" in await env.api.error("/admin/show/jobs", {"options": {"limit": "x"}})


async def test_show_jobs_lists_cancelled_and_error_only_with_async(env: Env) -> None:
    f = await env.api.create("/fail", "json", "{}")
    await env.executor.run_once()
    c = await env.api.create("/echo", "json", '"c"')
    await env.api.alter([c["job_id"]])
    assert (await env.api.show())["job_id"] == []
    everything = await env.api.show(show_async_jobs="true")
    assert everything["job_id"] == [f["job_id"], c["job_id"]]
    assert everything["status"] == ["ERROR", "CANCELLED"]


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_queued_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "stop-me"})
    job_id = created["job_id"]
    altered = await api.alter([job_id])
    assert altered["job_ids"] == [job_id]
    assert altered["action"] == "cancel"
    assert altered["status"] == ["cancelled"]

    def check(got: dict[str, Any]) -> None:
        assert got["job_status"] == "CANCELLED"
        assert got["running"] is False
        assert got["successful"] is False
        assert got["job_response"] == b"" and got["job_response_str"] == ""
        assert got["status_map"]["error_message"]

    check(await api.get(job_id))
    assert await env.executor.run_once() == []  # never runs
    check(await api.get(job_id))
    assert await env.job_rows() == [(job_id, "stop-me", "cancelled")]
    # cancelling again: it is finished now
    assert (await api.alter([job_id]))["status"] == ["already_done"]


async def test_cancel_statuses_per_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    done = await api.create("/echo", "json", '"d"')
    await env.executor.run_once()
    queued = await api.create("/echo", "json", '"q"')
    ids = [queued["job_id"], 999999, done["job_id"]]
    altered = await api.alter(ids, "CANCEL")  # action is case-insensitive
    assert altered["job_ids"] == ids
    assert altered["action"] == "cancel"
    assert altered["status"] == ["cancelled", "not_found", "already_done"]
    assert (await api.get(done["job_id"]))["job_status"] == "DONE"

    assert (await api.alter([424242]))["status"] == ["not_found"]
    empty = await api.alter([])
    assert empty["job_ids"] == [] and empty["status"] == []


async def test_cancel_other_actions_refused(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/echo", "json", '"p"')
    msg = await api.error(
        "/admin/alter/jobs", {"job_ids": [created["job_id"]], "action": "pause", "options": {}}
    )
    assert "'pause'" in msg
    assert "cancel" in msg
    assert (await api.get(created["job_id"]))["job_status"] == "RUNNING"


async def test_cancel_by_tag(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/echo", "json", '"t"', {"job_tag": "by-tag"})
    other = await api.create("/echo", "json", '"u"', {"job_tag": "other"})
    altered = await api.alter([], job_tag="by-tag")
    assert altered["job_ids"] == [created["job_id"]]
    assert altered["status"] == ["cancelled"]
    assert (await api.get(0, "by-tag"))["job_status"] == "CANCELLED"
    assert (await api.get(0, "other"))["job_status"] == "RUNNING"
    assert await env.executor.run_once() == [other["job_id"]]
    msg = await api.error(
        "/admin/alter/jobs", {"job_ids": [], "action": "cancel", "options": {"job_tag": "nope"}}
    )
    assert "nope" in msg and "not found" in msg.lower()


# -- handshake -------------------------------------------------------------------------------

HANDSHAKE_BODIES = {"json": b'{"options": {}}', "binary": b"\x00", "snappy": b"\x01\x00\x00"}


@pytest.mark.parametrize("prefix", ["", "/gpudb-0"])
async def test_show_system_status(env: Env, wire: str, prefix: str) -> None:
    reply = await env.api.using(wire).post(
        prefix + "/show/system/status", HANDSHAKE_BODIES[wire], rsp="/show/system/status"
    )
    assert reply.http_status == 200 and reply.record is not None
    status_map = reply.record["status_map"]
    assert isinstance(status_map["system"], str)
    assert json.loads(status_map["system"])["status"] == "running"
    if "ha_status" in status_map:
        assert json.loads(status_map["ha_status"])["drained"] in ("drained", "not_drained")


@pytest.mark.parametrize("prefix", ["", "/gpudb-0"])
async def test_show_system_properties(env: Env, wire: str, prefix: str) -> None:
    reply = await env.api.using(wire).post(
        prefix + "/show/system/properties", HANDSHAKE_BODIES[wire], rsp="/show/system/properties"
    )
    assert reply.http_status == 200 and reply.record is not None
    props = reply.record["property_map"]
    parts = props["version.gpudb_core_version"].split(".")
    assert len(parts) >= 4 and all(p.isdigit() for p in parts[:4]), props
    assert parts[:2] == ["7", "2"]  # no version-mismatch warning in the client
    assert props["conf.number_of_hosts"] == "1"
    assert props["conf.host0_public_urls"] == "http://testserver"  # from the Host header
    assert "conf.worker_http_server_urls" not in props
    if props.get("conf.enable_ha", "").upper() == "TRUE":
        assert props.get("conf.ha_ring_head_nodes_full")


async def test_public_url_config_wins(db: Database) -> None:
    async for e in _env(db, KineticaConfig(public_url="http://jobs.example:9191/")):
        props = (await e.api.ok("/show/system/properties", {"options": {}}))["property_map"]
        assert props["conf.host0_public_urls"] == "http://jobs.example:9191"


async def test_ping(env: Env) -> None:
    response = await env.client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.text == "Kinetica is running!"


# -- the three wire encodings ---------------------------------------------------------------


async def test_wire_encodings_are_interchangeable(env: Env) -> None:
    """Create in one wire encoding, read in the others: same job, same answer."""
    binary = env.api.using("binary")
    created = await env.api.using("snappy").create(
        "/sleep", "binary", avro_write(SLEEP_REQUEST, {"seconds": 0.0}), {"job_tag": "x-wire"}
    )
    await env.executor.run_once()
    answers = [await env.api.using(w).get(created["job_id"]) for w in WIRES]
    assert answers[0] == answers[1] == answers[2]
    assert avro_read(SLEEP_RESPONSE, answers[0]["job_response"]) == {"slept": 0.0}
    again = await binary.create(
        "/sleep", "binary", avro_write(SLEEP_REQUEST, {"seconds": 0.0}), {"job_tag": "x-wire"}
    )
    assert again == created


async def test_binary_wire_exact_bytes(env: Env) -> None:
    """The raw answer to a binary create is the spec's wrapper around create_job_response."""
    body = avro_write(
        SCHEMAS["/create/job"][0],
        Api.create_record("/echo", "binary", b"hi", {"job_tag": "t1"}),
    )
    response = await env.client.post(
        "/create/job", content=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 200
    content = response.content
    name = b"create_job_response"
    assert content.startswith(b"\x04OK\x00" + bytes([2 * len(name)]) + name)
    envelope = avro_read(GPUDB_RESPONSE, content)
    inner = avro_read(SCHEMAS["/create/job"][1], envelope["data"])
    assert inner["info"]["job_tag"] == "t1"
    assert content.endswith(envelope["data"] + b"\x00")  # empty data_str last


async def test_snappy_wire_answer_is_not_compressed(env: Env) -> None:
    response = await env.client.post(
        "/show/system/status",
        content=b"\x01\x00\x00",
        headers={"Content-Type": "application/x-snappy"},
    )
    assert response.status_code == 200
    assert response.content.startswith(b"\x04OK\x00")  # plain Avro gpudb_response
    error = await env.client.post(
        "/get/job",
        content=snappy.compress(avro_write(SCHEMAS["/get/job"][0], {"job_id": 5, "options": {}})),
        headers={"Content-Type": "application/x-snappy"},
    )
    assert error.status_code == 400
    assert error.content.startswith(b"\x0aERROR")


# -- garbage never gives a 500 ---------------------------------------------------------------


def _valid_create_body(wire: str) -> bytes:
    return encode_request(
        "/create/job",
        Api.create_record("/echo", "binary", b"\x00\x01\x80\xff", {"job_tag": "garbage-t"}),
        wire,
    )


def _random_bodies(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 48)))


async def _assert_refused(api: Api, path: str, body: bytes, fragment: str | None = None) -> str:
    reply = await api.post(path, body)
    assert reply.http_status == 400, (path, body, reply.envelope)
    assert reply.envelope["status"] == "ERROR"
    assert reply.envelope["data_type"] == "none"
    assert "internal error" not in reply.message, (path, body, reply.message)
    if fragment is not None:
        assert fragment in reply.message, (body, reply.message)
    return reply.message


async def test_truncated_bodies(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    good = _valid_create_body(wire)
    for n in range(len(good)):
        await _assert_refused(api, "/create/job", good[:n])
    assert await env.job_rows() == []
    # the whole body works, so the prefixes failed for being short
    reply = await api.post("/create/job", good, rsp="/create/job")
    assert reply.ok


async def test_trailing_bytes_refused(env: Env) -> None:
    for wire in ("binary", "snappy"):
        api = env.api.using(wire)
        body = avro_write(SCHEMAS["/get/job"][0], {"job_id": 1, "options": {}}) + b"\x00"
        if wire == "snappy":
            body = snappy.compress(body)
        await _assert_refused(api, "/get/job", body, "trailing")
    await _assert_refused(env.api, "/get/job", b'{"job_id": 1, "options": {}} x', "not valid JSON")


async def test_random_bodies(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    for seed, path in enumerate(("/create/job", "/get/job", "/admin/alter/jobs")):
        for body in _random_bodies(seed=1234 + seed, count=60):
            if wire == "snappy":
                await _assert_refused(api, path, body)
                # snappy that decompresses fine around garbage Avro
                await _assert_refused(api, path, snappy.compress(body))
            else:
                await _assert_refused(api, path, body)
    assert await env.job_rows() == []


async def test_empty_body(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    for path in SCHEMAS:
        await _assert_refused(api, path, b"")


async def test_oversized_body(small_env: Env, wire: str) -> None:
    api = small_env.api.using(wire)
    record = Api.create_record("/echo", "binary", random.Random(7).randbytes(2000))
    body = encode_request("/create/job", record, wire)
    assert len(body) > 1024
    await _assert_refused(api, "/create/job", body, "larger than 1024 bytes")
    await _assert_refused(api, "/create/job", b"\x00" * 1025, "larger than 1024 bytes")

    # a streamed body (no Content-Length) is cut off too
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"\x00" * 300

    response = await small_env.client.post(
        "/create/job", content=chunks(), headers={"Content-Type": CONTENT_TYPES[wire]}
    )
    assert response.status_code == 400
    reply = decode_reply(response, wire, None)
    assert "larger than 1024 bytes" in reply.message
    assert await small_env.job_rows() == []


async def test_body_of_exactly_the_limit_is_accepted(small_env: Env) -> None:
    record = Api.create_record("/echo", "json", '"x"', {"job_tag": "edge"})
    body = encode_request("/create/job", record, "json")
    body = body[:-1] + b" " * (1024 - len(body)) + b"}"
    assert len(body) == 1024
    reply = await small_env.api.post("/create/job", body, rsp="/create/job")
    assert reply.ok

    binary = small_env.api.using("binary")
    base = len(encode_request("/create/job", Api.create_record("/echo", "binary", b""), "binary"))
    size = 1023 - base  # the data length varint grows from 1 byte to 2
    record = Api.create_record("/echo", "binary", b"\x07" * size)
    body = encode_request("/create/job", record, "binary")
    assert len(body) == 1024
    reply = await binary.post("/create/job", body, rsp="/create/job")
    assert reply.ok


@pytest.mark.parametrize(
    ("endpoint", "data_str", "options"),
    [
        pytest.param("/echo", "a\u0000b", {}, id="echo-nul"),
        pytest.param("/echo", '"\ud800"', {}, id="echo-lone-surrogate"),
        pytest.param("/echo", '["\ud83d"]', {}, id="echo-lone-high-surrogate"),
        pytest.param("/sleep", '{"seconds": 0, "note": "\udfff"}', {}, id="sleep-lone-surrogate"),
        pytest.param("/echo", '"x"', {"note": "a\u0000b"}, id="option-nul"),
        pytest.param("/echo", '"x"', {"note": "\ud800"}, id="option-lone-surrogate"),
    ],
)
async def test_json_text_the_database_cannot_store(
    env: Env, endpoint: str, data_str: str, options: dict[str, str]
) -> None:
    """JSON escapes can carry NUL and lone surrogates (the client's json.dumps sends them as
    \\u0000 / \\ud800). Such a request is either stored and answered intact, or refused with a
    message that names the problem: never a generic internal error."""
    body = json.dumps(
        {
            "endpoint": endpoint,
            "request_encoding": "json",
            "data": "",
            "data_str": data_str,
            "options": options,
        }
    ).encode()
    reply = await env.api.post("/create/job", body, rsp="/create/job")
    if not reply.ok:
        assert "internal error" not in reply.message, (data_str, options, reply.message)
        assert await env.job_rows() == []
        return
    assert reply.record is not None
    await env.executor.run_once()
    got = await env.api.get(reply.record["job_id"])
    assert got["job_status"] == "DONE", got
    if endpoint == "/echo":
        assert got["job_response_str"] == data_str


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("a\u0000b", id="nul"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("x" * 5000, id="very-long"),
        pytest.param("has space", id="space"),
    ],
)
async def test_odd_tags_in_get_and_cancel(env: Env, tag: str) -> None:
    """A tag no job can have is simply not found (or refused as invalid), by name."""
    for path, record in (
        ("/get/job", {"job_id": 0, "options": {"job_tag": tag}}),
        ("/admin/alter/jobs", {"job_ids": [], "action": "cancel", "options": {"job_tag": tag}}),
    ):
        body = json.dumps(record).encode()
        message = await _assert_refused(env.api, path, body)
        assert "not found" in message.lower() or "job_tag" in message, message


async def test_cancel_with_many_ids(env: Env) -> None:
    """A long id list (more than a driver's 32767 bind parameters) is the client's request,
    not an outage: answer per id, or refuse it by name with 400. A 503 would make the client
    re-send it 5 times and fail over (§2.4) while /show/system/status still says running."""
    created = await env.api.create("/echo", "json", '"x"')
    ids = [created["job_id"], *range(10**6, 10**6 + 40_000)]
    reply = await env.api.call(
        "/admin/alter/jobs", {"job_ids": ids, "action": "cancel", "options": {}}
    )
    if reply.ok:
        assert reply.record is not None
        assert reply.record["job_ids"] == ids
        assert reply.record["status"] == ["cancelled"] + ["not_found"] * 40_000
    else:
        assert "internal error" not in reply.message and "unavailable" not in reply.message
        assert (await env.api.get(created["job_id"]))["job_status"] == "RUNNING"


@pytest.mark.parametrize("limit", ["99999999999999999999", "9223372036854775808"])
async def test_show_jobs_with_huge_limit(env: Env, limit: str) -> None:
    created = await env.api.create("/echo", "json", '"x"')
    reply = await env.api.call("/admin/show/jobs", {"options": {"limit": limit}})
    if reply.ok:
        assert reply.record is not None
        assert reply.record["job_id"] == [created["job_id"]]
    else:
        assert "'limit'" in reply.message, reply.message
