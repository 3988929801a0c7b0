"""The Kinetica wire (api/kinetica/wire.py), byte for byte against the spec's golden examples
(§2.1-2.3): envelopes, request decoding in each wire encoding, content types."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
import snappy as python_snappy

from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.api.kinetica.wire import WireEncoding, decode_request, encode_error, encode_ok
from jobstore.codecs import snappy
from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.domain.errors import DecodeError

BINARY, SNAPPY, JSON = WireEncoding.BINARY, WireEncoding.SNAPPY, WireEncoding.JSON
CREATE_REQ, CREATE_RSP = ENDPOINTS["/create/job"]
GET_REQ, GET_RSP = ENDPOINTS["/get/job"]
STATUS_REQ, STATUS_RSP = ENDPOINTS["/show/system/status"]
ALTER_REQ, _ = ENDPOINTS["/admin/alter/jobs"]


def avro_str(text: str) -> bytes:
    """An Avro string: zigzag-varint length (small lengths only) then UTF-8."""
    raw = text.encode()
    assert len(raw) < 64
    return bytes([2 * len(raw)]) + raw


# -- golden bytes from §2.1 / §2.2 ----------------------------------------------------------

CREATE_DATA = bytes.fromhex("02 02 0e 6a6f625f746167 04 7431 00")


def test_golden_create_job_response_data() -> None:
    assert CREATE_DATA == b"\x02\x02\x0ejob_tag\x04t1\x00"
    assert len(CREATE_DATA) == 14
    assert CREATE_RSP.encode({"job_id": 1, "info": {"job_tag": "t1"}}) == CREATE_DATA
    assert CREATE_RSP.decode(CREATE_DATA) == {"job_id": 1, "info": {"job_tag": "t1"}}


@pytest.mark.parametrize("wire_enc", [BINARY, SNAPPY])
def test_golden_create_job_ok_wrapper(wire_enc: WireEncoding) -> None:
    """04 4f4b 00 26 <"create_job_response"> 1c <14 data bytes> 00; SNAPPY is not compressed."""
    expected = (
        bytes.fromhex("04 4f4b 00 26")
        + b"create_job_response"
        + bytes.fromhex("1c")
        + CREATE_DATA
        + b"\x00"
    )
    got = encode_ok({"job_id": 1, "info": {"job_tag": "t1"}}, wire_enc, CREATE_RSP)
    assert got == expected


@pytest.mark.parametrize("wire_enc", [BINARY, SNAPPY])
def test_golden_error_envelope(wire_enc: WireEncoding) -> None:
    expected = b"\x0aERROR" + b"\x1eJob 7 not found" + b"\x08none" + b"\x00" + b"\x00"
    assert encode_error("Job 7 not found", wire_enc) == expected


def test_golden_json_ok_envelope() -> None:
    """§2.3: the record is a JSON *string* in data_str, data is "" and present."""
    body = encode_ok({"job_id": 1, "info": {"job_tag": "t1"}}, JSON, CREATE_RSP)
    envelope = json.loads(body)
    assert envelope == {
        "status": "OK",
        "message": "",
        "data_type": "create_job_response",
        "data": "",
        "data_str": envelope["data_str"],
    }
    assert isinstance(envelope["data_str"], str)
    inner = json.loads(envelope["data_str"])
    assert inner == {"job_id": 1, "info": {"job_tag": "t1"}}
    assert list(inner) == ["job_id", "info"]  # schema field order


def test_golden_json_error_envelope() -> None:
    body = encode_error("Job 7 not found", JSON)
    assert json.loads(body) == {
        "status": "ERROR",
        "message": "Job 7 not found",
        "data_type": "none",
        "data": "",
        "data_str": "",
    }


def test_golden_empty_options_request() -> None:
    """`{"options":{}}` is byte 00 in BINARY, 01 00 00 in SNAPPY, and that JSON text."""
    assert STATUS_REQ.encode({"options": {}}) == b"\x00"
    assert python_snappy.compress(b"\x00") == b"\x01\x00\x00"
    assert snappy.compress(b"\x00") == b"\x01\x00\x00"
    assert decode_request(b"\x00", BINARY, STATUS_REQ) == {"options": {}}
    assert decode_request(b"\x01\x00\x00", SNAPPY, STATUS_REQ) == {"options": {}}
    assert decode_request(b'{"options": {}}', JSON, STATUS_REQ) == {"options": {}}


def test_error_envelope_decodes_with_standard_avro() -> None:
    body = encode_error("bad \u00e9 thing", BINARY)
    schema = fastavro.parse_schema(GPUDB_RESPONSE.definition)
    buf = io.BytesIO(body)
    assert fastavro.schemaless_reader(buf, schema, None) == {
        "status": "ERROR",
        "message": "bad \u00e9 thing",
        "data_type": "none",
        "data": b"",
        "data_str": "",
    }
    assert buf.tell() == len(body)


def test_json_envelope_carries_bytes_as_latin1() -> None:
    record = {
        "endpoint": "/echo",
        "job_status": "DONE",
        "running": False,
        "progress": 100,
        "successful": True,
        "response_encoding": "binary",
        "job_response": bytes(range(256)),
        "job_response_str": "",
        "status_map": {},
        "info": {"job_tag": "x"},
    }
    envelope = json.loads(encode_ok(record, JSON, GET_RSP))
    inner = json.loads(envelope["data_str"])
    assert inner["job_response"] == "".join(map(chr, range(256)))
    assert inner["job_response"].encode("latin-1") == bytes(range(256))
    assert inner["running"] is False and inner["progress"] == 100
    # and the same record in Avro
    avro = GPUDB_RESPONSE.decode(encode_ok(record, BINARY, GET_RSP))
    assert GET_RSP.decode(avro["data"]) == record


def test_encode_ok_rejects_record_not_matching_schema() -> None:
    with pytest.raises(DecodeError, match="create_job_response"):
        encode_ok({"job_id": "one", "info": {}}, BINARY, CREATE_RSP)


# -- wire.decode_request ---------------------------------------------------------------------


def test_decode_binary_create_request() -> None:
    record = {
        "endpoint": "/echo",
        "request_encoding": "binary",
        "data": b"\x00\x80\xff",
        "data_str": "",
        "options": {"job_tag": "t1"},
    }
    body = CREATE_REQ.encode(record)
    assert decode_request(body, BINARY, CREATE_REQ) == record
    assert decode_request(python_snappy.compress(body), SNAPPY, CREATE_REQ) == record


def test_decode_binary_trailing_bytes_refused() -> None:
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        decode_request(b"\x00\x00", BINARY, STATUS_REQ)
    with pytest.raises(DecodeError, match="trailing"):
        decode_request(python_snappy.compress(b"\x00\x00"), SNAPPY, STATUS_REQ)


def test_decode_binary_every_truncation_refused() -> None:
    body = CREATE_REQ.encode(
        {
            "endpoint": "/echo",
            "request_encoding": "binary",
            "data": b"abc",
            "data_str": "",
            "options": {"job_tag": "t1"},
        }
    )
    for n in range(len(body)):
        with pytest.raises(DecodeError):
            decode_request(body[:n], BINARY, CREATE_REQ)
    compressed = python_snappy.compress(body)
    for n in range(len(compressed)):
        with pytest.raises(DecodeError):
            decode_request(compressed[:n], SNAPPY, CREATE_REQ)


def test_decode_binary_invalid_utf8_string_refused() -> None:
    with pytest.raises(DecodeError):
        decode_request(b"\x04\xff\xfe" + b"\x00", BINARY, ENDPOINTS["/admin/alter/jobs"][0])
    # a string field holding invalid UTF-8 (the endpoint of a create)
    body = b"\x04\xc3\x28" + avro_str("binary") + b"\x00" + b"\x00" + b"\x00"
    with pytest.raises(DecodeError):
        decode_request(body, BINARY, CREATE_REQ)


def test_decode_snappy_wire_refuses_uncompressed_avro() -> None:
    body = GET_REQ.encode({"job_id": 5, "options": {"job_tag": "abcdefgh"}})
    with pytest.raises(DecodeError, match="snappy"):
        decode_request(body, SNAPPY, GET_REQ)


def test_decode_json_field_defaults_and_coercions() -> None:
    assert decode_request(b"{}", JSON, CREATE_REQ) == {
        "endpoint": "",
        "request_encoding": "",
        "data": b"",
        "data_str": "",
        "options": {},
    }
    assert decode_request(b'{"job_id": 3.0}', JSON, GET_REQ) == {"job_id": 3, "options": {}}
    got = decode_request(
        b'{"job_ids": [1, 2], "action": "cancel", '
        b'"options": {"a": true, "b": false, "c": 5, "d": "x"}}',
        JSON,
        ALTER_REQ,
    )
    assert got == {
        "job_ids": [1, 2],
        "action": "cancel",
        "options": {"a": "true", "b": "false", "c": "5", "d": "x"},
    }


def test_decode_json_bytes_are_latin1() -> None:
    text = "".join(map(chr, range(256)))
    body = json.dumps({"data": text}).encode()
    assert decode_request(body, JSON, CREATE_REQ)["data"] == bytes(range(256))
    with pytest.raises(DecodeError, match="Latin-1"):
        decode_request(json.dumps({"data": "\u0100"}).encode(), JSON, CREATE_REQ)
    with pytest.raises(DecodeError, match="Latin-1"):
        decode_request(json.dumps({"data": "\u20ac"}).encode(), JSON, CREATE_REQ)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"1", "JSON object"),
        (b'{"job_id": "1"}', "'job_id' must be an integer"),
        (b'{"job_id": false}', "'job_id' must be an integer"),
        (b'{"job_id": 1.5}', "'job_id' must be an integer"),
        (b'{"job_id": null}', "'job_id' must be an integer"),
        (b'{"job_id": 9223372036854775808}', "'job_id' is out of range"),
        (b'{"job_id": -9223372036854775809}', "'job_id' is out of range"),
        (b'{"job_id": 1, "options": []}', "'options' must be an object"),
        (b'{"job_id": 1, "options": {"k": null}}', "option 'options.k'"),
        (b'{"job_id": 1, "options": {"k": {}}}', "option 'options.k'"),
        (b'{"job_id": 1, "options": {"k": [1]}}', "option 'options.k'"),
    ],
)
def test_decode_json_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match=None) as info:
        decode_request(body, JSON, GET_REQ)
    assert fragment in str(info.value)


def test_decode_json_long_edges() -> None:
    assert decode_request(b'{"job_id": 9223372036854775807}', JSON, GET_REQ)["job_id"] == 2**63 - 1
    assert decode_request(b'{"job_id": -9223372036854775808}', JSON, GET_REQ)["job_id"] == -(2**63)
    with pytest.raises(DecodeError, match="job_id"):
        decode_request(b'{"job_id": 1e300}', JSON, GET_REQ)
    for bad in (b'{"job_id": NaN}', b'{"job_id": Infinity}'):  # not JSON at all
        with pytest.raises(DecodeError, match="is not a JSON value"):
            decode_request(bad, JSON, GET_REQ)


def test_decode_json_type_errors_for_strings_and_arrays() -> None:
    with pytest.raises(DecodeError, match="'endpoint' must be a string"):
        decode_request(b'{"endpoint": 1}', JSON, CREATE_REQ)
    with pytest.raises(DecodeError, match="'data'"):
        decode_request(b'{"data": [1, 2]}', JSON, CREATE_REQ)
    with pytest.raises(DecodeError, match="'job_ids' must be an array"):
        decode_request(b'{"job_ids": {}}', JSON, ALTER_REQ)
    with pytest.raises(DecodeError, match="'job_ids' must be an integer"):
        decode_request(b'{"job_ids": [1, "2"]}', JSON, ALTER_REQ)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/octet-stream", BINARY),
        ("Application/Octet-Stream; charset=binary", BINARY),
        ("application/x-snappy", SNAPPY),
        (" APPLICATION/X-SNAPPY ", SNAPPY),
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        ("text/plain", JSON),
        ("", JSON),
        (None, JSON),
    ],
)
def test_wire_encoding_from_content_type(content_type: str | None, expected: WireEncoding) -> None:
    assert WireEncoding.from_content_type(content_type) is expected


def test_response_media_types() -> None:
    assert JSON.response_media_type == "application/json"
    assert BINARY.response_media_type == "application/octet-stream"
    assert SNAPPY.response_media_type == "application/octet-stream"


def test_wire_module_exports() -> None:
    assert wire.GPUDB_RESPONSE is GPUDB_RESPONSE
    assert [f["name"] for f in GPUDB_RESPONSE.definition["fields"]] == [
        "status",
        "message",
        "data_type",
        "data",
        "data_str",
    ]


def _roundtrip_json_record(record: dict[str, Any]) -> dict[str, Any]:
    """encode_ok in JSON, then the client's decoding (json.loads twice, Latin-1 back)."""
    envelope = json.loads(encode_ok(record, JSON, GET_RSP))
    inner: dict[str, Any] = json.loads(envelope["data_str"])
    inner["job_response"] = inner["job_response"].encode("latin-1")
    return inner


def test_json_and_avro_envelopes_agree() -> None:
    record = {
        "endpoint": "/sleep",
        "job_status": "ERROR",
        "running": False,
        "progress": 37,
        "successful": False,
        "response_encoding": "json",
        "job_response": b"",
        "job_response_str": '{"slept":0.0}',
        "status_map": {"error_message": "boom \u20ac"},
        "info": {"job_tag": "t", "job_id": "9"},
    }
    via_json = _roundtrip_json_record(record)
    via_avro = GET_RSP.decode(GPUDB_RESPONSE.decode(encode_ok(record, BINARY, GET_RSP))["data"])
    assert via_json == via_avro == record
