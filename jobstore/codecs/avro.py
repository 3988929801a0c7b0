"""Schemaless Avro binary (Kinetica's wire and payload format), via fastavro."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
from fastavro.validation import validate

from jobstore.codecs.avro_messages import binary_reason, explain_mismatch
from jobstore.domain.errors import ConfigError, DecodeError


class Schema:
    """A parsed Avro record schema with strict encode/decode helpers."""

    def __init__(self, definition: dict[str, Any] | str) -> None:
        raw = json.loads(definition) if isinstance(definition, str) else definition
        named: dict[str, Any] = {}
        try:
            self._parsed = fastavro.parse_schema(raw, named_schemas=named)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise ConfigError(f"invalid Avro schema: {exc}") from exc
        self._named = named
        self.definition: dict[str, Any] = raw
        self.name: str = raw.get("name", "record")
        self._prefixes: dict[int, Any] = {}  # field count -> parsed record of the first fields

    def encode(self, record: Any) -> bytes:
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, self._parsed, record)
        except Exception as exc:
            raise DecodeError(f"value does not match Avro schema {self.name!r}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes, *, what: str = "data", encoding: str = "binary") -> Any:
        """The record in `data`; DecodeError says what is wrong with the bytes.

        The message reads `<what> is not a valid Avro '<name>' (<encoding>): <reason>`, with
        the field where decoding stopped when the schema is a record.
        """
        buf = io.BytesIO(data)
        try:
            record = fastavro.schemaless_reader(buf, self._parsed, None)
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ValueError, ...
            raise self._decode_error(data, exc, what, encoding) from exc
        if buf.tell() != len(data):
            left = len(data) - buf.tell()
            raise DecodeError(
                f"{what} is not a valid Avro {self.name!r} ({encoding}): "
                f"{left} trailing bytes after the record"
            )
        return record

    def _decode_error(self, data: bytes, exc: Exception, what: str, encoding: str) -> DecodeError:
        field, field_type, cause = self._failing_field(data)
        reason = binary_reason(cause or exc, field, field_type)
        return DecodeError(f"{what} is not a valid Avro {self.name!r} ({encoding}): {reason}")

    def _failing_field(self, data: bytes) -> tuple[str | None, Any, Exception | None]:
        """The first top-level field that does not decode, its type, and why.

        Reads the first field, then the first two, and so on (slow, but only for bytes
        already refused). Field types are the schema's own, so named types resolve.
        """
        fields = self.definition.get("fields") if self.definition.get("type") == "record" else None
        if not isinstance(fields, list):
            return None, None, None
        for count in range(1, len(fields) + 1):
            try:
                fastavro.schemaless_reader(io.BytesIO(data), self._prefix(count), None)
            except Exception as exc:
                last = fields[count - 1]
                return str(last.get("name")), last.get("type"), exc
        return None, None, None

    def _prefix(self, count: int) -> Any:
        parsed = self._prefixes.get(count)
        if parsed is None:
            fields = self.definition["fields"][:count]
            parsed = fastavro.parse_schema({**self.definition, "fields": fields})
            self._prefixes[count] = parsed
        return parsed

    def validate(self, record: Any) -> None:
        """Check a JSON-decoded value against the schema; DecodeError names what is wrong."""
        try:
            ok = validate(record, self._parsed, raise_errors=False)
        except Exception:
            ok = False
        if not ok:
            reason = explain_mismatch(record, self._parsed, self._named)
            detail = f": {reason}" if reason else ""
            raise DecodeError(f"request does not match schema {self.name!r}{detail}")
