"""Job payloads (codecs/__init__.py): decode_request and encode_response per encoding."""

from __future__ import annotations

import pytest
import snappy as python_snappy

from jobstore.codecs import Schema, unwrap_bytes
from jobstore.codecs import decode_request as decode_payload
from jobstore.codecs import encode_response as encode_payload
from jobstore.domain.errors import BadRequest, DecodeError
from jobstore.domain.models import Encoding, Payload
from tests.support import avro

SLEEP_REQUEST = Schema(avro.SLEEP_REQUEST)
SLEEP_RESPONSE = Schema(avro.SLEEP_RESPONSE)


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


def test_a_raw_answer_is_held_to_the_encoders_ceiling_not_the_create_limit() -> None:
    """A node with --max-nesting 200 accepts a payload 100 levels deep; /echo's answer (its
    request text, as is) must be storable too, whatever the default limit."""
    deep = "[" * 100 + "]" * 100
    assert decode_payload(Payload(Encoding.JSON, text=deep), None, max_nesting=200)
    stored = encode_payload(deep, Encoding.JSON, None, raw=True)
    assert stored.text == deep
    with pytest.raises(DecodeError, match="Unicode"):
        encode_payload('"\\ud800"', Encoding.JSON, None, raw=True)
