"""Avro schemas of the Kinetica endpoints jobstore serves (as the official client sends them),
(The envelope around every answer is in codecs/envelope.py.)"""

from __future__ import annotations

from typing import Any

from jobstore.codecs import Schema

MAP = {"type": "map", "values": "string"}


def _record(name: str, *fields: tuple[str, Any]) -> Schema:
    return Schema(
        {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}
    )


def _array(items: str) -> dict[str, str]:
    return {"type": "array", "items": items}


OPTIONS_ONLY = ("options", MAP)

# endpoint path -> (request schema, response schema)
ENDPOINTS: dict[str, tuple[Schema, Schema]] = {
    "/create/job": (
        _record(
            "create_job_request",
            ("endpoint", "string"),
            ("request_encoding", "string"),
            ("data", "bytes"),
            ("data_str", "string"),
            OPTIONS_ONLY,
        ),
        _record("create_job_response", ("job_id", "long"), ("info", MAP)),
    ),
    "/get/job": (
        _record("get_job_request", ("job_id", "long"), OPTIONS_ONLY),
        _record(
            "get_job_response",
            ("endpoint", "string"),
            ("job_status", "string"),
            ("running", "boolean"),
            ("progress", "int"),
            ("successful", "boolean"),
            ("response_encoding", "string"),
            ("job_response", "bytes"),
            ("job_response_str", "string"),
            ("status_map", MAP),
            ("info", MAP),
        ),
    ),
    "/admin/show/jobs": (
        _record("admin_show_jobs_request", OPTIONS_ONLY),
        _record(
            "admin_show_jobs_response",
            ("job_id", _array("long")),
            ("status", _array("string")),
            ("endpoint_name", _array("string")),
            ("time_received", _array("long")),
            ("auth_id", _array("string")),
            ("source_ip", _array("string")),
            ("query_text", _array("string")),
            ("user_data", _array("string")),
            ("flags", _array("string")),
            ("info", MAP),
        ),
    ),
    "/admin/alter/jobs": (
        _record(
            "admin_alter_jobs_request",
            ("job_ids", _array("long")),
            ("action", "string"),
            OPTIONS_ONLY,
        ),
        _record(
            "admin_alter_jobs_response",
            ("job_ids", _array("long")),
            ("action", "string"),
            ("status", _array("string")),
            ("info", MAP),
        ),
    ),
    "/show/system/status": (
        _record("show_system_status_request", OPTIONS_ONLY),
        _record("show_system_status_response", ("status_map", MAP), ("info", MAP)),
    ),
    "/show/system/properties": (
        _record("show_system_properties_request", OPTIONS_ONLY),
        _record("show_system_properties_response", ("property_map", MAP), ("info", MAP)),
    ),
}
