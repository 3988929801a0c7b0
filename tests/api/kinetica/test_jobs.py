"""Kinetica create and get, in-process over each wire (json, binary, snappy) and database."""

from __future__ import annotations

import json

import pytest
import snappy

from tests.support.avro import SLEEP_REQUEST, SLEEP_RESPONSE, avro_read, avro_write
from tests.support.kinetica import (
    ALL_BYTES,
    GPUDB_RESPONSE,
    SCHEMAS,
    WIRES,
    Api,
    Env,
    assert_create_info,
    assert_done,
    assert_running,
)

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
