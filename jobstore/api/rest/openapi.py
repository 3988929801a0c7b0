"""The OpenAPI 3.1 document of /api/v1, written by hand to match routes.py exactly.

The document itself is the data file openapi.json next to this module. Only what depends on the
node is filled in here: placeholders `"${name}"` (the version, the long-poll limit, whether
credentials are optional) and the list of endpoints a create may name.

A test fuzzes the API against this document (tests/api/rest/test_rest_schemathesis.py), so a
route that answers something the document does not say fails the build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jobstore import __version__

DOCUMENT_FILE = "openapi.json"


@cache
def _template() -> str:
    return resources.files("jobstore.api.rest").joinpath(DOCUMENT_FILE).read_text("utf-8")


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """`value` with every string `"${name}"` replaced by `values[name]`."""
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return values[value[2:-1]]
    return value


def openapi_document(
    *, max_wait_seconds: float, auth_required: bool, endpoints: Sequence[str] = ()
) -> dict[str, Any]:
    """The document for a node with these settings: its wait limit, whether auth is on, and
    the endpoints it can create jobs for (listed in the `endpoint` of CreateJob, CreateSchedule
    and UpdateSchedule when given)."""
    security: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}]
    if not auth_required:
        security.append({})  # authentication is off on this node: credentials are optional
    values = {"version": __version__, "max_wait_seconds": max_wait_seconds, "security": security}
    document: dict[str, Any] = _fill(json.loads(_template()), values)
    if endpoints:
        for name in ("CreateJob", "CreateSchedule", "UpdateSchedule"):
            create = document["components"]["schemas"][name]
            create["properties"]["endpoint"]["enum"] = list(endpoints)
    return document
