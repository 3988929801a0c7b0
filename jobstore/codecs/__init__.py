"""Payload codecs, in a registry keyed by encoding name.

A job's request arrives as `binary` (Avro), `snappy` (raw-block snappy around Avro) or `json`;
an endpoint may declare Avro schemas. `decode_request` turns a payload into the value a handler
receives, `encode_response` turns the handler's answer into a stored payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobstore.codecs import jsontext, snappy
from jobstore.codecs.avro import Schema
from jobstore.domain.errors import BadRequest, DecodeError
from jobstore.domain.inputs import DEFAULT_MAX_NESTING, MAX_NESTING_CEILING
from jobstore.domain.models import Encoding, Payload

__all__ = ["Schema", "decode_request", "encode_response", "unwrap_bytes"]

# Each encoding of the binary family reduces to plain Avro bytes through one of these.
_UNWRAP: dict[Encoding, Callable[[bytes], bytes]] = {
    Encoding.BINARY: lambda data: data,
    Encoding.SNAPPY: snappy.decompress,
}


def unwrap_bytes(payload: Payload) -> bytes:
    """The plain (uncompressed) bytes of a binary-family payload."""
    if payload.data is None:
        raise DecodeError(f"request_encoding {payload.encoding.value!r} needs 'data' bytes")
    return _UNWRAP[payload.encoding](payload.data)


def decode_request(
    payload: Payload,
    schema: Schema | None,
    *,
    raw: bool = False,
    max_nesting: int = DEFAULT_MAX_NESTING,
) -> Any:
    """The value a handler receives for this payload.

    JSON text is parsed (and checked against the schema when there is one); binary-family bytes
    are Avro-decoded with the schema, or handed over as bytes when there is none or `raw` is set.
    """
    if payload.encoding is Encoding.JSON:
        if payload.text is None:
            raise DecodeError("request_encoding 'json' needs 'data_str' text")
        # Raw handlers get valid JSON too.
        value = jsontext.loads(payload.text, what="data_str", max_nesting=max_nesting)
        if raw:
            return payload.text
        if schema is not None:
            schema.validate(value)
        return value
    data = unwrap_bytes(payload)
    if raw or schema is None:
        return data
    return schema.decode(data, what="the payload", encoding=payload.encoding.value)


def encode_response(
    value: Any, family: Encoding, schema: Schema | None, *, raw: bool = False
) -> Payload:
    """Store a handler's answer in the request's family: Avro/bytes or JSON text.

    A raw handler's text is stored as it is (it must be JSON); any other value is written
    as JSON, so a plain string answer becomes a JSON string.
    """
    if family is Encoding.JSON:
        if raw and isinstance(value, str):
            # Checked as JSON (storable, too): an answer, so only the encoders' ceiling applies.
            jsontext.loads(value, what="the endpoint's answer", max_nesting=MAX_NESTING_CEILING)
            text = value
        else:
            text = jsontext.dumps(value)
            jsontext.check_text(text, what="the endpoint's answer")
        return Payload(Encoding.JSON, text=text)
    if isinstance(value, bytes | bytearray):
        return Payload(Encoding.BINARY, data=bytes(value))
    if schema is None:
        raise BadRequest(
            "the endpoint returned a value that is not bytes and has no Avro response schema; "
            "a binary request needs one of the two"
        )
    return Payload(Encoding.BINARY, data=schema.encode(value))
