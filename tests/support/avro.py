"""Avro as a client writes and reads it: schemaless records through fastavro.

The /sleep records are copied from jobstore's documented payload (the Kinetica wire spec's
example endpoint), not imported from jobstore, so tests hold the server to the document.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

# The built-in /sleep endpoint's records.
SLEEP_REQUEST: dict[str, Any] = {
    "type": "record",
    "name": "sleep_request",
    "fields": [{"name": "seconds", "type": "double"}],
}
SLEEP_RESPONSE: dict[str, Any] = {
    "type": "record",
    "name": "sleep_response",
    "fields": [{"name": "slept", "type": "double"}],
}


def avro_write(schema: Any, record: Any) -> bytes:
    """`record` as schemaless Avro; `schema` is a definition or an already parsed schema."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def avro_read(schema: Any, data: bytes) -> Any:
    """Decode and insist every byte was used (no trailing garbage in an answer)."""
    buf = io.BytesIO(data)
    value = fastavro.schemaless_reader(buf, fastavro.parse_schema(schema), None)
    assert buf.tell() == len(data), f"{len(data) - buf.tell()} trailing bytes after {schema}"
    return value
