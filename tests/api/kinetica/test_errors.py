"""Kinetica requests that must be refused, and the message each refusal carries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import snappy

from tests.support.avro import SLEEP_REQUEST, avro_write
from tests.support.kinetica import (
    SCHEMAS,
    WIRES,
    Api,
    Env,
    decode_reply,
    encode_request,
)

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
    # NaN is not JSON: refused as the body is read, whatever field holds it.
    pytest.param("/get/job", b'{"job_id": NaN, "options": {}}', "NaN is not", id="id-nan"),
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
