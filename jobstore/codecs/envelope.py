"""Kinetica's answer envelope, `gpudb_response`: what the Kinetica facade writes around every
answer, and what an upstream Kinetica's answers are read out of (upstream/kinetica.py)."""

from __future__ import annotations

from jobstore.codecs.avro import Schema

GPUDB_RESPONSE = Schema(
    {
        "type": "record",
        "name": "gpudb_response",
        "fields": [
            {"name": "status", "type": "string"},
            {"name": "message", "type": "string"},
            {"name": "data_type", "type": "string"},
            {"name": "data", "type": "bytes"},
            {"name": "data_str", "type": "string"},
        ],
    }
)
