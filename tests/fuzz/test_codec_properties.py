"""Property tests of every codec: round trips of valid values, and garbage refused only with
DecodeError (or the facade's ClientError), never another exception.

Avro (codecs/avro.py) over every schema jobstore speaks, raw-block snappy, JSON text, job
payloads (decode_request / encode_response), Kinetica's wire (requests in, envelopes out) and
CDM's `${...}` placeholders. Runs are derandomized (the same cases every run) and small: the
coverage-guided search is `make fuzz` (docs/fuzzing.md).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobstore.api.cdm.variables import VARIABLE_NAME, format_java, parse_java, resolve, shift
from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.codecs import Schema, decode_request, encode_response, jsontext, snappy
from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.domain.errors import BadRequest, ClientError, DecodeError
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.builtins import FAIL_REQUEST, SLEEP_REQUEST, SLEEP_RESPONSE
from tests.support.avro import avro_read
from tests.support.kinetica import GPUDB_RESPONSE as SPEC_GPUDB_RESPONSE

CASES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(CASES, max_examples=25)

SCHEMAS: dict[str, Schema] = {
    "gpudb_response": GPUDB_RESPONSE,
    "sleep_request": Schema(SLEEP_REQUEST),
    "sleep_response": Schema(SLEEP_RESPONSE),
    "fail_request": Schema(FAIL_REQUEST),
    **{s.name: s for pair in ENDPOINTS.values() for s in pair},
}
REQUESTS = {path: pair[0] for path, pair in ENDPOINTS.items()}
WIRES = list(wire.WireEncoding)

# Text as hostile clients send it: any code point, lone surrogates and NUL included.
SPECIAL = ["\x00", "\ud800", "\udfff", "\ud83d", "\uffff", "é", "'", '"', "\\", "$", "{", "}", "\n"]
TEXT = st.text(max_size=12)
HOSTILE = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL)), max_size=12
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    HOSTILE,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE, inner, max_size=4),
    max_leaves=12,
)
DEEP = ["[" * 100_000, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000]


def picked(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of `values`, drawn by index: a strategy holding long values has a huge repr."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def values_for(schema: Any) -> st.SearchStrategy[Any]:
    """Valid values of an Avro type (the subset jobstore's schemas use)."""
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return st.fixed_dictionaries(
                {f["name"]: values_for(f["type"]) for f in schema["fields"]}
            )
        if kind == "map":
            return st.dictionaries(TEXT, values_for(schema["values"]), max_size=4)
        if kind == "array":
            return st.lists(values_for(schema["items"]), max_size=4)
        return values_for(kind)
    return {
        "string": TEXT,
        "bytes": st.binary(max_size=40),
        "long": st.integers(-(2**63), 2**63 - 1),
        "int": st.integers(-(2**31), 2**31 - 1),
        "boolean": st.booleans(),
        "double": st.floats(allow_nan=False),
    }[schema]


def mutated(data: bytes, how: int, at: int, byte: int) -> bytes:
    """`data` truncated, with one byte changed, or with one byte inserted."""
    at = at % (len(data) + 1)
    if how == 0:
        return data[:at]
    if how == 1 and at < len(data):
        return data[:at] + bytes([byte]) + data[at + 1 :]
    return data[:at] + bytes([byte]) + data[at:]


MUTATION = st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255))


def refused_cleanly(exc: ClientError) -> None:
    """A refusal's message is for people: no Python object reprs, no tracebacks."""
    text = str(exc)
    assert text and "object at 0x" not in text and "Traceback" not in text, text


# -- Avro ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_avro_values_round_trip(name: str) -> None:
    schema = SCHEMAS[name]

    @CASES
    @given(value=values_for(schema.definition))
    def check(value: Any) -> None:
        assert schema.decode(schema.encode(value)) == value

    check()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_avro_garbage_and_mutations_raise_only_decode_error(name: str) -> None:
    schema = SCHEMAS[name]

    @FEW
    @given(value=values_for(schema.definition), garbage=st.binary(max_size=48), change=MUTATION)
    def check(value: Any, garbage: bytes, change: tuple[int, int, int]) -> None:
        for data in (garbage, mutated(schema.encode(value), *change)):
            try:
                schema.decode(data)
            except DecodeError as exc:
                refused_cleanly(exc)

    check()


@pytest.mark.parametrize("name", ["sleep_request", "fail_request", "create_job_request"])
def test_avro_any_json_value_is_validated_or_refused(name: str) -> None:
    schema = SCHEMAS[name]

    @CASES
    @given(
        value=JSON_VALUES | st.dictionaries(st.sampled_from(["seconds", "message"]), JSON_VALUES)
    )
    def check(value: Any) -> None:
        for step in (schema.validate, schema.encode):
            try:
                step(value)
            except DecodeError as exc:
                refused_cleanly(exc)

    check()


# -- snappy -------------------------------------------------------------------------------------


@CASES
@given(data=st.binary(max_size=2000), change=MUTATION, garbage=st.binary(max_size=64))
@example(data=b"", change=(0, 0, 0), garbage=b"\xff\xff\xff\xff\x7f")  # a 34 GB length header
def test_snappy_round_trips_and_refuses_garbage(
    data: bytes, change: tuple[int, int, int], garbage: bytes
) -> None:
    compressed = snappy.compress(data)
    assert snappy.decompress(compressed) == data
    for block in (garbage, mutated(compressed, *change)):
        try:
            snappy.decompress(block)
        except DecodeError as exc:
            refused_cleanly(exc)


# -- JSON text ----------------------------------------------------------------------------------


def storable(value: Any) -> bool:
    """Whether a JSON value holds only text a database stores (no NUL, no lone surrogate)."""
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    return not isinstance(value, list) or all(storable(v) for v in value)


def nested(depth: int) -> list[Any]:
    """A list `depth` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@CASES
@given(value=JSON_VALUES)
def test_json_dumps_and_loads_round_trip(value: Any) -> None:
    text = jsontext.dumps(value)
    assert json.loads(text) == value
    try:
        assert jsontext.loads(text) == value
    except DecodeError:  # JSON from outside must hold storable text: \u0000 is refused
        assert not storable(value)


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_json_dumps_of_a_deep_value_is_a_decode_error_or_text(depth: int) -> None:
    try:
        text = jsontext.dumps(nested(depth))
    except DecodeError:
        return
    assert text == "[" * (depth + 1) + "]" * (depth + 1)


@CASES
@given(text=HOSTILE | st.binary(max_size=40) | picked([*DEEP, "NaN", "1" * 5000]))
def test_json_loads_returns_a_value_or_decode_error(text: str | bytes) -> None:
    try:
        jsontext.loads(text)
    except DecodeError as exc:
        refused_cleanly(exc)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), b"bytes", {1, 2}, object()])
def test_json_dumps_refuses_what_json_cannot_carry(value: Any) -> None:
    with pytest.raises(DecodeError):
        jsontext.dumps({"a": [value]})


@CASES
@given(text=HOSTILE)
def test_check_text_and_storable_text(text: str) -> None:
    storable = "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    try:
        jsontext.check_text(text, what="text")
        accepted = True
    except DecodeError:
        accepted = False
    assert accepted is storable
    made = jsontext.storable_text(text)
    jsontext.check_text(made, what="text")
    assert (made == text) is storable


@CASES
@given(data=st.binary(max_size=64), text=HOSTILE)
def test_latin1_bytes_round_trip(data: bytes, text: str) -> None:
    assert jsontext.bytes_from_latin1(jsontext.latin1_from_bytes(data), what="data") == data
    try:
        assert jsontext.latin1_from_bytes(jsontext.bytes_from_latin1(text, what="d")) == text
    except DecodeError:
        assert any(ord(c) > 255 for c in text)


# -- job payloads -------------------------------------------------------------------------------

PAYLOAD_SCHEMAS = [None, SCHEMAS["sleep_request"], SCHEMAS["fail_request"]]


@CASES
@given(
    value=JSON_VALUES | st.fixed_dictionaries({"seconds": JSON_SCALARS}),
    text=HOSTILE | picked(DEEP),
    which=st.sampled_from(PAYLOAD_SCHEMAS),
)
def test_json_payloads_decode_or_raise_decode_error(
    value: Any, text: str, which: Schema | None
) -> None:
    for sent in (json.dumps(value), text):
        try:
            got = decode_request(Payload(Encoding.JSON, text=sent), which)
        except DecodeError as exc:
            refused_cleanly(exc)
            continue
        jsontext.check_text(sent, what="an accepted payload")
        if which is not None:
            which.validate(got)


@CASES
@given(garbage=st.binary(max_size=48), which=st.sampled_from(PAYLOAD_SCHEMAS))
def test_binary_payloads_decode_or_raise_decode_error(garbage: bytes, which: Schema | None) -> None:
    for payload, plain in (
        (Payload(Encoding.BINARY, data=garbage), garbage),
        (Payload(Encoding.SNAPPY, data=garbage), None),
        (Payload(Encoding.SNAPPY, data=snappy.compress(garbage)), garbage),
    ):
        try:
            got = decode_request(payload, which)
        except DecodeError as exc:
            refused_cleanly(exc)
        else:
            if which is None and plain is not None:  # no schema: the plain bytes, as sent
                assert got == plain


@pytest.mark.parametrize("encoding", list(Encoding))
def test_a_payload_without_its_body_is_refused(encoding: Encoding) -> None:
    with pytest.raises(DecodeError):
        decode_request(Payload(encoding), None)


@CASES
@given(value=values_for(SLEEP_RESPONSE), answer=JSON_VALUES)
def test_responses_are_stored_and_read_back(value: dict[str, Any], answer: Any) -> None:
    schema = SCHEMAS["sleep_response"]
    stored = encode_response(value, Encoding.BINARY, schema)
    assert decode_request(stored, schema) == value
    try:
        text = encode_response(answer, Encoding.JSON, None)
    except DecodeError:  # a lone surrogate, which no database stores
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(answer, ensure_ascii=False))
    else:
        assert text.text is not None and json.loads(text.text) == answer


@CASES
@given(text=HOSTILE | JSON_VALUES.map(json.dumps))
def test_raw_json_answers_are_stored_as_sent_or_refused(text: str) -> None:
    try:
        stored = encode_response(text, Encoding.JSON, None, raw=True)
    except DecodeError:
        with pytest.raises(DecodeError):
            jsontext.loads(text)
            jsontext.check_text(text, what="text")
    else:
        assert stored.text == text


# -- Kinetica's wire ----------------------------------------------------------------------------


def client_body(record: dict[str, Any], schema: Schema, wire_enc: wire.WireEncoding) -> bytes:
    """A request as the official client sends it (wire spec §2)."""
    if wire_enc is wire.WireEncoding.JSON:
        shown = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in record.items()}
        return json.dumps(shown).encode()
    data = schema.encode(record)
    return snappy.compress(data) if wire_enc is wire.WireEncoding.SNAPPY else data


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(has_nul(v) for v in value)


@pytest.mark.parametrize("path", sorted(REQUESTS))
def test_kinetica_requests_round_trip_in_every_wire(path: str) -> None:
    schema = REQUESTS[path]

    @FEW
    @given(record=values_for(schema.definition))
    def check(record: dict[str, Any]) -> None:
        for wire_enc in WIRES:
            body = client_body(record, schema, wire_enc)
            if not has_nul(record):
                assert wire.decode_request(body, wire_enc, schema) == record, wire_enc
            elif wire_enc is wire.WireEncoding.JSON:  # text with NUL cannot be stored
                with pytest.raises(DecodeError, match="NUL"):
                    wire.decode_request(body, wire_enc, schema)
            else:
                with contextlib.suppress(DecodeError):
                    assert wire.decode_request(body, wire_enc, schema) == record

    check()


@CASES
@given(data=st.binary(max_size=64))
@example(data=b"\x00\x00\x00\x00\x00\x00\xe0?")  # the Avro of {"seconds": 0.5}
def test_kinetica_json_wire_carries_any_bytes(data: bytes) -> None:
    """Avro `bytes` travel in JSON as Latin-1 strings, U+0000 included (wire spec §2.3): the
    official client sends a binary job request over the JSON wire this way."""
    schema = REQUESTS["/create/job"]
    record = {
        "endpoint": "/sleep",
        "request_encoding": "binary",
        "data": data,
        "data_str": "",
        "options": {},
    }
    body = client_body(record, schema, wire.WireEncoding.JSON)
    assert wire.decode_request(body, wire.WireEncoding.JSON, schema) == record


@CASES
@given(
    body=st.binary(max_size=64)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(
        st.sampled_from(["endpoint", "job_id", "options", "data", "job_ids"]), JSON_VALUES
    ).map(lambda v: json.dumps(v).encode())
    | picked([d.encode() for d in DEEP]),
    path=st.sampled_from(sorted(REQUESTS)),
    wire_enc=st.sampled_from(WIRES),
)
def test_kinetica_garbage_is_refused_with_a_client_error(
    body: bytes, path: str, wire_enc: wire.WireEncoding
) -> None:
    try:
        wire.decode_request(body, wire_enc, REQUESTS[path])
    except ClientError as exc:
        refused_cleanly(exc)
        wire.encode_error(str(exc), wire_enc)


def read_envelope(body: bytes, wire_enc: wire.WireEncoding) -> dict[str, Any]:
    """The spec's gpudb_response, read as the official client reads it."""
    if wire_enc is wire.WireEncoding.JSON:
        envelope: dict[str, Any] = json.loads(body)
        assert sorted(envelope) == ["data", "data_str", "data_type", "message", "status"]
        return envelope
    return dict(avro_read(SPEC_GPUDB_RESPONSE, body))


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_kinetica_answers_are_envelopes_the_client_reads(path: str) -> None:
    schema = ENDPOINTS[path][1]

    @FEW
    @given(record=values_for(schema.definition), wire_enc=st.sampled_from(WIRES))
    def check(record: dict[str, Any], wire_enc: wire.WireEncoding) -> None:
        envelope = read_envelope(wire.encode_ok(record, wire_enc, schema), wire_enc)
        assert (envelope["status"], envelope["data_type"]) == ("OK", schema.name)
        if wire_enc is wire.WireEncoding.JSON:
            shown = {
                k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in record.items()
            }
            assert json.loads(envelope["data_str"]) == shown
        else:
            assert schema.decode(envelope["data"]) == record

    check()


@CASES
@given(message=TEXT, hostile=HOSTILE, wire_enc=st.sampled_from(WIRES))
def test_kinetica_error_envelopes_carry_the_message(
    message: str, hostile: str, wire_enc: wire.WireEncoding
) -> None:
    envelope = read_envelope(wire.encode_error(message, wire_enc), wire_enc)
    assert envelope["status"] == "ERROR" and envelope["data_type"] == "none"
    assert envelope["message"] == message
    # Any text at all in the JSON wire, which is how text a database cannot store comes in.
    json_envelope = read_envelope(
        wire.encode_error(hostile, wire.WireEncoding.JSON), wire.WireEncoding.JSON
    )
    assert json_envelope["message"] == hostile


# -- CDM placeholders ---------------------------------------------------------------------------

NOW = datetime(2026, 3, 31, 23, 59, 58, 123456, tzinfo=UTC)
FRAGMENTS = st.sampled_from(
    [
        "${",
        "}",
        "dateformat(",
        "timestamp(",
        ")",
        ",",
        " ",
        "-1",
        "99999999999",
        "DAY",
        "MONTH",
        "YEAR",
        "SECOND",
        "yyyy",
        "yy",
        "MM",
        "dd",
        "HH",
        "mm",
        "ss",
        "SSS",
        "'",
        "''",
        "x",
        "Q",
        "region",
        "\x00",
        "\ud800",
        "é",
    ]
)
TEMPLATES = st.lists(FRAGMENTS | TEXT, max_size=12).map("".join)
NAMES = st.from_regex(VARIABLE_NAME, fullmatch=True).filter(lambda n: len(n) < 20)


@CASES
@given(template=TEMPLATES, variables=st.dictionaries(NAMES | HOSTILE, HOSTILE, max_size=3))
@example(template="${dateformat(yyyy, 99999999999, DAY)}", variables={})
@example(template="${timestamp(dateformat(yyyyyyyyy))}", variables={})
@example(template="${dateformat('unclosed)}", variables={})
def test_placeholders_resolve_or_raise_bad_request(
    template: str, variables: dict[str, str]
) -> None:
    try:
        resolved = resolve(template, variables, NOW)
    except BadRequest as exc:
        assert str(exc).startswith("Invalid parameter"), exc
        return
    if "${" not in template:
        assert resolved == template


@CASES
@given(name=NAMES, value=HOSTILE, before=TEXT, after=TEXT)
def test_a_variable_is_replaced_by_its_value(
    name: str, value: str, before: str, after: str
) -> None:
    before, after = before.replace("$", ""), after.replace("$", "")
    template = before + "${ " + name + " }" + after
    assert resolve(template, {name: value}, NOW) == before + value + after


SEPARATORS = st.sampled_from(["-", " ", ":", "/", "_", ".", "'T'", "''", ""])


@CASES
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)),
    seps=st.lists(SEPARATORS, min_size=6, max_size=6),
)
def test_a_formatted_time_reads_back(moment: datetime, seps: list[str]) -> None:
    fields = ["yyyy", "MM", "dd", "HH", "mm", "ss", "SSS"]
    pattern = "".join(f + s for f, s in zip(fields, [*seps, ""], strict=True))
    expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parse_java(format_java(moment, pattern), pattern, reference=moment) == expected


@CASES
@given(
    offset=st.integers(-(2**70), 2**70),
    unit=st.sampled_from(["SECOND", "minute", "DAY", "MONTH", "YEAR", "week"]),
)
def test_a_shift_is_a_time_or_bad_request(offset: int, unit: str) -> None:
    try:
        moved = shift(NOW, offset, unit)
    except BadRequest as exc:
        assert "Invalid parameter" in str(exc)
    else:
        assert 1 <= moved.year <= 9999
