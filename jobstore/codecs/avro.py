"""Schemaless Avro binary (Kinetica's wire and payload format), via fastavro."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
from fastavro.validation import validate

from jobstore.domain.errors import ConfigError, DecodeError


class Schema:
    """A parsed Avro record schema with strict encode/decode helpers."""

    def __init__(self, definition: dict[str, Any] | str) -> None:
        raw = json.loads(definition) if isinstance(definition, str) else definition
        try:
            self._parsed = fastavro.parse_schema(raw)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise ConfigError(f"invalid Avro schema: {exc}") from exc
        self.definition: dict[str, Any] = raw
        self.name: str = raw.get("name", "record")

    def encode(self, record: Any) -> bytes:
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, self._parsed, record)
        except Exception as exc:
            raise DecodeError(f"value does not match Avro schema {self.name!r}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> Any:
        buf = io.BytesIO(data)
        try:
            record = fastavro.schemaless_reader(buf, self._parsed, None)
        except Exception as exc:  # EOFError, UnicodeDecodeError, ValueError, ...
            raise DecodeError(
                f"cannot decode {len(data)} bytes as Avro {self.name!r}: "
                f"{type(exc).__name__} {exc}".rstrip()
            ) from exc
        if buf.tell() != len(data):
            raise DecodeError(
                f"cannot decode Avro {self.name!r}: {len(data) - buf.tell()} trailing bytes"
            )
        return record

    def validate(self, record: Any) -> None:
        """Check a JSON-decoded value against the schema."""
        try:
            ok = validate(record, self._parsed, raise_errors=False)
        except Exception:
            ok = False
        if not ok:
            fields = [f["name"] for f in self.definition.get("fields", [])]
            raise DecodeError(
                f"request does not match schema {self.name!r} (fields: {', '.join(fields)})"
            )
