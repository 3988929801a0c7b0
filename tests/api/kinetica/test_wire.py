"""Codecs and the Kinetica wire, byte for byte against the spec's golden examples (§2.1-2.3)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
import snappy as python_snappy

from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS, GPUDB_RESPONSE
from jobstore.api.kinetica.wire import WireEncoding, decode_request, encode_error, encode_ok
from jobstore.codecs import Schema, jsontext, snappy, unwrap_bytes
from jobstore.codecs import decode_request as decode_payload
from jobstore.codecs import encode_response as encode_payload
from jobstore.domain.errors import BadRequest, ConfigError, DecodeError
from jobstore.domain.models import Encoding, Payload

BINARY, SNAPPY, JSON = WireEncoding.BINARY, WireEncoding.SNAPPY, WireEncoding.JSON
CREATE_REQ, CREATE_RSP = ENDPOINTS["/create/job"]
GET_REQ, GET_RSP = ENDPOINTS["/get/job"]
STATUS_REQ, STATUS_RSP = ENDPOINTS["/show/system/status"]
ALTER_REQ, _ = ENDPOINTS["/admin/alter/jobs"]

SLEEP_REQUEST = Schema(
    {"type": "record", "name": "sleep_request", "fields": [{"name": "seconds", "type": "double"}]}
)
SLEEP_RESPONSE = Schema(
    {"type": "record", "name": "sleep_response", "fields": [{"name": "slept", "type": "double"}]}
)


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
    for bad in (b'{"job_id": NaN}', b'{"job_id": Infinity}', b'{"job_id": 1e300}'):
        with pytest.raises(DecodeError, match="job_id"):
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


# -- codecs.decode_request / encode_response (job payloads) --------------------------------


def test_payload_json_parsed_and_validated() -> None:
    assert decode_payload(Payload(Encoding.JSON, text='{"a": [1]}'), None) == {"a": [1]}
    assert decode_payload(Payload(Encoding.JSON, text='{"seconds": 2}'), SLEEP_REQUEST) == {
        "seconds": 2
    }
    # raw handlers get the text as sent, but it must still be JSON
    assert decode_payload(Payload(Encoding.JSON, text=' {"a":1} '), None, raw=True) == ' {"a":1} '
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode_payload(Payload(Encoding.JSON, text="not json"), None, raw=True)
    with pytest.raises(DecodeError, match="data_str is not valid JSON"):
        decode_payload(Payload(Encoding.JSON, text="{"), None)
    with pytest.raises(DecodeError, match="sleep_request"):
        decode_payload(Payload(Encoding.JSON, text='{"seconds": "x"}'), SLEEP_REQUEST)
    with pytest.raises(DecodeError, match="sleep_request"):
        decode_payload(Payload(Encoding.JSON, text="{}"), SLEEP_REQUEST)
    with pytest.raises(DecodeError, match="data_str"):
        decode_payload(Payload(Encoding.JSON, text=None), None)


def test_payload_binary_and_snappy() -> None:
    avro = SLEEP_REQUEST.encode({"seconds": 1.5})
    assert avro == b"\x00\x00\x00\x00\x00\x00\xf8\x3f"
    assert decode_payload(Payload(Encoding.BINARY, data=avro), SLEEP_REQUEST) == {"seconds": 1.5}
    wrapped = Payload(Encoding.SNAPPY, data=python_snappy.compress(avro))
    assert decode_payload(wrapped, SLEEP_REQUEST) == {"seconds": 1.5}
    assert decode_payload(wrapped, SLEEP_REQUEST, raw=True) == avro  # raw: unwrapped bytes
    assert decode_payload(wrapped, None) == avro
    assert unwrap_bytes(wrapped) == avro
    assert decode_payload(Payload(Encoding.BINARY, data=b"\xff"), None) == b"\xff"
    with pytest.raises(DecodeError, match="sleep_request"):
        decode_payload(Payload(Encoding.BINARY, data=b"\x01"), SLEEP_REQUEST)
    with pytest.raises(DecodeError, match="trailing"):
        decode_payload(Payload(Encoding.BINARY, data=avro + b"\x00"), SLEEP_REQUEST)
    with pytest.raises(DecodeError, match="invalid snappy data"):
        decode_payload(Payload(Encoding.SNAPPY, data=avro), SLEEP_REQUEST)
    with pytest.raises(DecodeError, match="needs 'data'"):
        decode_payload(Payload(Encoding.BINARY, data=None), None)
    with pytest.raises(DecodeError, match="needs 'data'"):
        decode_payload(Payload(Encoding.SNAPPY, data=None), None)


def test_encode_response_families() -> None:
    assert encode_payload({"slept": 0.0}, Encoding.JSON, SLEEP_RESPONSE) == Payload(
        Encoding.JSON, text='{"slept":0.0}'
    )
    # a plain string answer is a JSON string; a raw handler's JSON text is kept as it is
    assert encode_payload("already text", Encoding.JSON, None) == Payload(
        Encoding.JSON, text='"already text"'
    )
    assert encode_payload('{"a": 1}', Encoding.JSON, None, raw=True) == Payload(
        Encoding.JSON, text='{"a": 1}'
    )
    assert encode_payload({"k": "\u00e9"}, Encoding.JSON, None) == Payload(
        Encoding.JSON, text='{"k":"\u00e9"}'
    )
    assert encode_payload(b"\x00\xff", Encoding.BINARY, None) == Payload(
        Encoding.BINARY, data=b"\x00\xff"
    )
    assert encode_payload(bytearray(b"ab"), Encoding.BINARY, None) == Payload(
        Encoding.BINARY, data=b"ab"
    )
    assert encode_payload({"slept": 1.5}, Encoding.BINARY, SLEEP_RESPONSE) == Payload(
        Encoding.BINARY, data=b"\x00\x00\x00\x00\x00\x00\xf8\x3f"
    )
    with pytest.raises(BadRequest, match="no Avro response schema"):
        encode_payload({"slept": 1.5}, Encoding.BINARY, None)
    with pytest.raises(DecodeError, match="sleep_response"):
        encode_payload({"slept": "x"}, Encoding.BINARY, SLEEP_RESPONSE)
    with pytest.raises(DecodeError, match="JSON"):
        encode_payload({"x": float("nan")}, Encoding.JSON, None)
    with pytest.raises(DecodeError, match="JSON"):
        encode_payload({"x": object()}, Encoding.JSON, None)


# -- snappy ---------------------------------------------------------------------------------


def test_snappy_round_trip_is_raw_block_format() -> None:
    data = bytes(range(256)) * 40
    compressed = snappy.compress(data)
    assert compressed == bytes(python_snappy.compress(data))
    assert compressed[:2] == bytes([0x80 | (len(data) & 0x7F), len(data) >> 7])  # varint header
    assert snappy.decompress(compressed) == data
    assert snappy.decompress(b"\x00") == b""


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(
            b"\xff\x06\x00\x00sNaPpY" + python_snappy.compress(b"x"), "invalid", id="framing"
        ),
        pytest.param(b"\x80" * 10 + b"\x01", "bad length header", id="varint-too-long"),
        pytest.param(b"\x80\x80", "bad length header", id="varint-unterminated"),
        pytest.param(b"\x80\x80\x80\x80\x10", "too large", id="4GiB"),
        pytest.param(b"\x81\x80\x80\x80\x01" + b"\x00", "too large", id="just-over-256MiB"),
        pytest.param(b"\x05\x10hel", "invalid snappy data", id="truncated-literal"),
        pytest.param(b"\x03\x08ab", "invalid snappy data", id="short-output"),
        pytest.param(b"\x02\x00a\x00", "invalid snappy data", id="trailing-junk"),
        pytest.param(b"\x04\x01\x00", "invalid snappy data", id="copy-before-start"),
        pytest.param(b"not snappy at all", "invalid snappy data", id="text"),
    ],
)
def test_snappy_decompress_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        snappy.decompress(data)
    assert fragment in str(info.value)
    assert "snappy" in str(info.value)


def test_snappy_every_truncation_refused() -> None:
    compressed = python_snappy.compress(b"hello hello hello hello world " * 20)
    for n in range(len(compressed)):
        with pytest.raises(DecodeError):
            snappy.decompress(compressed[:n])


def test_snappy_size_limit_boundary() -> None:
    limit = snappy.MAX_UNCOMPRESSED
    header = b""
    value = limit + 1
    while True:
        byte = value & 0x7F
        value >>= 7
        header += bytes([byte | (0x80 if value else 0)])
        if not value:
            break
    with pytest.raises(DecodeError, match="too large"):
        snappy.decompress(header + b"\x00")


# -- avro.Schema -----------------------------------------------------------------------------


def test_schema_invalid_definition() -> None:
    with pytest.raises(ConfigError, match="invalid Avro schema"):
        Schema({"type": "record", "name": "r", "fields": [{"name": "x", "type": "nope"}]})
    with pytest.raises(ConfigError):
        Schema('{"type": "record"}')
    schema = Schema(json.dumps(SLEEP_REQUEST.definition))
    assert schema.name == "sleep_request"


def test_schema_decode_trailing_and_truncated() -> None:
    good = GET_REQ.encode({"job_id": 7, "options": {"job_tag": "abc"}})
    assert GET_REQ.decode(good) == {"job_id": 7, "options": {"job_tag": "abc"}}
    with pytest.raises(DecodeError, match="2 trailing bytes"):
        GET_REQ.decode(good + b"\x00\x00")
    for n in range(len(good)):
        with pytest.raises(DecodeError, match="get_job_request"):
            GET_REQ.decode(good[:n])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x01", id="negative-string-length"),
        pytest.param(b"\x7f", id="string-longer-than-data"),
        pytest.param(b"\x02\xff", id="invalid-utf8"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="huge-varint"),
        pytest.param(b"\xff" * 12, id="unterminated-varint"),
    ],
)
def test_schema_decode_garbage(data: bytes) -> None:
    schema = Schema({"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]})
    with pytest.raises(DecodeError, match="'r'"):
        schema.decode(data)


def test_schema_decode_huge_block_counts_fail_fast() -> None:
    """A map or array claiming 2**62 entries over a few bytes ends in DecodeError, not a hang."""
    for data in (b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", b"\xfd\xff\xff\xff\xff\xff\xff\xff\x7f"):
        with pytest.raises(DecodeError):
            STATUS_REQ.decode(data)
        with pytest.raises(DecodeError):
            ALTER_REQ.decode(data)


def test_schema_encode_mismatch() -> None:
    with pytest.raises(DecodeError, match="create_job_response"):
        CREATE_RSP.encode({"job_id": 1, "info": {"k": 5}})
    with pytest.raises(DecodeError, match="create_job_response"):
        CREATE_RSP.encode({"info": {}})


def test_schema_validate() -> None:
    SLEEP_REQUEST.validate({"seconds": 1.0})
    SLEEP_REQUEST.validate({"seconds": 1})
    for bad in ({"seconds": "1"}, {}, [], None, {"seconds": None}):
        with pytest.raises(DecodeError, match=r"sleep_request' \(fields: seconds\)"):
            SLEEP_REQUEST.validate(bad)


# -- jsontext --------------------------------------------------------------------------------


def test_jsontext_loads() -> None:
    assert jsontext.loads('{"a": 1}') == {"a": 1}
    assert jsontext.loads(b'["\xc3\xa9"]') == ["\u00e9"]
    with pytest.raises(DecodeError, match="thing is not valid JSON"):
        jsontext.loads("{", what="thing")
    with pytest.raises(DecodeError, match="not valid JSON"):
        jsontext.loads(b"\xff\xfe\xfd")
    with pytest.raises(DecodeError, match="not valid JSON"):
        jsontext.loads("")


def test_jsontext_dumps_is_compact_and_strict() -> None:
    assert jsontext.dumps({"a": [1, 2.5], "b": "\u00e9"}) == '{"a":[1,2.5],"b":"\u00e9"}'
    for bad in (float("nan"), float("inf"), {"x": b"bytes"}, {1j: 1}):
        with pytest.raises(DecodeError, match="cannot be written as JSON"):
            jsontext.dumps(bad)


def test_jsontext_latin1() -> None:
    every = bytes(range(256))
    text = jsontext.latin1_from_bytes(every)
    assert text == "".join(map(chr, range(256)))
    assert jsontext.bytes_from_latin1(text, what="x") == every
    assert jsontext.bytes_from_latin1("", what="x") == b""
    for bad in ("\u0100", "ok\u20ac", "\U0001f600", "\ud800"):
        with pytest.raises(DecodeError, match=r"'data' must carry bytes as a Latin-1 string"):
            jsontext.bytes_from_latin1(bad, what="'data'")


def test_latin1_is_not_utf8_or_base64() -> None:
    """§2.3: the byte 0xe9 is the one code point U+00E9, not UTF-8's two bytes or base64."""
    assert jsontext.bytes_from_latin1("\u00e9", what="x") == b"\xe9"
    assert jsontext.bytes_from_latin1("AAE=", what="x") == b"AAE="


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
