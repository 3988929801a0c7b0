"""Kinetica's wire: request bodies in, `gpudb_response` envelopes out.

The request's Content-Type picks the encoding: `application/octet-stream` is schemaless Avro,
`application/x-snappy` is raw-block snappy around Avro (answered in plain Avro), anything else
is JSON. Answers use the same family. In JSON, Avro `bytes` travel as Latin-1 strings.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from jobstore.codecs import Schema, jsontext, snappy
from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.domain.errors import DecodeError


class WireEncoding(enum.Enum):
    BINARY = "application/octet-stream"
    SNAPPY = "application/x-snappy"
    JSON = "application/json"

    @classmethod
    def from_content_type(cls, content_type: str | None) -> WireEncoding:
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        if mime == cls.BINARY.value:
            return cls.BINARY
        if mime == cls.SNAPPY.value:
            return cls.SNAPPY
        return cls.JSON

    @property
    def response_media_type(self) -> str:
        return "application/json" if self is WireEncoding.JSON else "application/octet-stream"


def decode_request(body: bytes, wire: WireEncoding, schema: Schema) -> dict[str, Any]:
    if wire is WireEncoding.JSON:
        record = _from_json(body, schema)
    else:
        if wire is WireEncoding.SNAPPY:
            body = snappy.decompress(body)
        record = schema.decode(body, what="request body", encoding=wire.name.lower())
        if not isinstance(record, dict):  # pragma: no cover - every request schema is a record
            raise DecodeError("request is not a record")
    _check_texts(record)
    return record


def _check_texts(record: dict[str, Any]) -> None:
    """Avro strings are any UTF-8, NUL included: each must be storable. Kinetica's request
    records are flat (strings, maps of strings, arrays), so one level down is all there is."""
    for name, value in record.items():
        if isinstance(value, str):
            jsontext.check_text(value, what=repr(name))
        elif isinstance(value, dict):
            for key, text in value.items():
                jsontext.check_text(key, what=f"{name} key")
                jsontext.check_text(text, what=f"{name}.{key}")
        elif isinstance(value, list) and value and isinstance(value[0], str):
            for text in value:
                jsontext.check_text(text, what=repr(name))


def encode_ok(record: dict[str, Any], wire: WireEncoding, schema: Schema) -> bytes:
    if wire is WireEncoding.JSON:
        return _envelope_json("OK", "", schema.name, json.dumps(_to_json(record, schema)))
    return GPUDB_RESPONSE.encode(
        {
            "status": "OK",
            "message": "",
            "data_type": schema.name,
            "data": schema.encode(record),
            "data_str": "",
        }
    )


def encode_error(message: str, wire: WireEncoding) -> bytes:
    if wire is WireEncoding.JSON:
        return _envelope_json("ERROR", message, "none", "")
    return GPUDB_RESPONSE.encode(
        {"status": "ERROR", "message": message, "data_type": "none", "data": b"", "data_str": ""}
    )


def _envelope_json(status: str, message: str, data_type: str, data_str: str) -> bytes:
    envelope = {
        "status": status,
        "message": message,
        "data_type": data_type,
        "data": "",
        "data_str": data_str,
    }
    return json.dumps(envelope).encode()


# -- JSON <-> record, following the schema ---------------------------------------------------

_DEFAULTS: dict[str, Any] = {"string": "", "bytes": b"", "long": 0, "int": 0, "boolean": False}


def _from_json(body: bytes, schema: Schema) -> dict[str, Any]:
    value = jsontext.loads(body, what="request body")
    if not isinstance(value, dict):
        raise DecodeError("request body must be a JSON object")
    record: dict[str, Any] = {}
    for f in schema.definition["fields"]:
        name, ftype = f["name"], f["type"]
        if name not in value:
            record[name] = _default(ftype)
            continue
        record[name] = _coerce(value[name], ftype, name)
    return record


def _default(ftype: Any) -> Any:
    if isinstance(ftype, dict):
        return {} if ftype["type"] == "map" else []
    return _DEFAULTS[ftype]


def _coerce(value: Any, ftype: Any, name: str) -> Any:
    if isinstance(ftype, dict) and ftype["type"] == "map":
        if not isinstance(value, dict):
            raise DecodeError(f"{name!r} must be an object of strings")
        return {str(k): _as_option_string(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(ftype, dict) and ftype["type"] == "array":
        if not isinstance(value, list):
            raise DecodeError(f"{name!r} must be an array")
        return [_coerce(v, ftype["items"], name) for v in value]
    if ftype == "string":
        if not isinstance(value, str):
            raise DecodeError(f"{name!r} must be a string")
        return value
    if ftype == "bytes":
        if not isinstance(value, str):
            raise DecodeError(f"{name!r} must be a string of bytes (Latin-1)")
        return jsontext.bytes_from_latin1(value, what=repr(name))
    if ftype in ("long", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"{name!r} must be an integer")
        if isinstance(value, float) and not value.is_integer():
            raise DecodeError(f"{name!r} must be an integer")
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise DecodeError(f"{name!r} is out of range")
        return number
    raise DecodeError(f"{name!r} has an unsupported type")  # pragma: no cover


def _as_option_string(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise DecodeError(f"option {name!r} must be a string")


def _to_json(record: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Avro record -> JSON-ready dict, in schema field order, bytes as Latin-1 strings."""
    out: dict[str, Any] = {}
    for f in schema.definition["fields"]:
        value = record[f["name"]]
        out[f["name"]] = jsontext.latin1_from_bytes(value) if isinstance(value, bytes) else value
    return out
