"""The Kinetica harness: the spec's schemas, a client for the in-process app, and its checks.

The Avro schemas below are copied from the wire spec (shared/specs/kinetica-wire.md, the client's
own strings), not imported from jobstore, so the tests hold the server to the spec. Requests are
built the way the official `gpudb` client builds them:

* JSON wire: `json.dumps` of the record, keys in schema order, Avro `bytes` as Latin-1 strings.
* BINARY wire: schemaless Avro; SNAPPY wire: raw-block snappy around that Avro.

Every response goes through `Api.post`, which checks the `gpudb_response` envelope (§2) in the
client's encoding before a test looks at it. The fixtures (`env`, `small_env`, `wire`) are in
tests/api/kinetica/conftest.py.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx
import snappy
import sqlalchemy as sa

from jobstore.api.kinetica import KineticaConfig
from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.executor.runner import Executor
from jobstore.store import Database
from tests.support.avro import avro_read, avro_write

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

CONTENT_TYPES = {
    "json": "application/json",
    "binary": "application/octet-stream",
    "snappy": "application/x-snappy",
}
WIRES = list(CONTENT_TYPES)
ENVELOPE_KEYS = {"status", "message", "data_type", "data", "data_str"}


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


async def kinetica_env(db: Database, config: KineticaConfig | None = None) -> AsyncIterator[Env]:
    """The app over a node whose executor the test drives (`executor.run_once()`)."""
    node = node_for_tests(db, node_id="test", lease_seconds=30)
    executor, service = node.executor, node.jobs
    app = node.app(run_background=False, kinetica=config or KineticaConfig())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(db, executor, service, Api(client), client)
    finally:
        await executor.stop()


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
