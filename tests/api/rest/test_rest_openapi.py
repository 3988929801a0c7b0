"""The OpenAPI document: the data file jobstore/api/rest/openapi.json, filled in per node.

The file holds values the code also defines (states, problem types, limits); these tests keep
the two from drifting apart. tests/api/rest/test_rest_schemathesis.py checks the routes against
it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest

from jobstore import __version__
from jobstore.api.documents import attempt_document, job_summary
from jobstore.api.rest.inputs import (
    BULK_FIELDS,
    BULK_STATES,
    DEFAULT_LIMIT,
    MAX_JOB_ID,
    MAX_LIMIT,
    OPTION_TYPES,
)
from jobstore.api.rest.openapi import DOCUMENT_FILE, openapi_document
from jobstore.api.rest.problems import (
    AUTH_CHALLENGE,
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPES,
)
from jobstore.core.jobs import BULK_MAX_JOBS, COUNT_CAP
from jobstore.domain.models import (
    FINAL_STATES,
    Attempt,
    AttemptOutcome,
    Encoding,
    Job,
    JobState,
)
from jobstore.domain.options import MAX_ATTEMPTS_LIMIT, MAX_PRIORITY, MAX_SECONDS, MIN_PRIORITY

STATES = [s.value for s in JobState]
FINALS = sorted(s.value for s in FINAL_STATES)
ENCODINGS = [e.value for e in Encoding]


def _document(**settings: Any) -> dict[str, Any]:
    return openapi_document(**{"max_wait_seconds": 60.0, "auth_required": True, **settings})


def _walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@pytest.mark.parametrize("auth_required", [True, False])
def test_the_node_settings_are_filled_in(auth_required: bool) -> None:
    doc = _document(max_wait_seconds=12.5, auth_required=auth_required, endpoints=["/a", "/b"])
    assert not [v for v in _walk(doc) if isinstance(v, str) and v.startswith("${")]
    assert doc["info"]["version"] == __version__
    waits = [
        p["schema"]
        for item in doc["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if p.get("name") == "wait"
    ]
    assert len(waits) == 2 and all(w["maximum"] == 12.5 for w in waits)
    security = [{"basic": []}, {"bearer": []}]
    assert doc["security"] == (security if auth_required else [*security, {}])
    endpoint = doc["components"]["schemas"]["CreateJob"]["properties"]["endpoint"]
    assert endpoint["enum"] == ["/a", "/b"]
    assert "enum" not in _document()["components"]["schemas"]["CreateJob"]["properties"]["endpoint"]


def test_each_document_is_its_own_copy() -> None:
    first = _document(endpoints=["/a"])
    first["components"]["schemas"]["Job"]["properties"].clear()
    assert _document()["components"]["schemas"]["Job"]["properties"]


def test_the_file_is_plain_json_in_the_package() -> None:
    text = resources.files("jobstore.api.rest").joinpath(DOCUMENT_FILE).read_text("utf-8")
    assert json.loads(text)["openapi"] == "3.1.0"


def test_the_file_agrees_with_the_code() -> None:
    doc = _document()
    schemas = doc["components"]["schemas"]
    problem = schemas["Problem"]["properties"]
    assert problem["type"]["enum"] == [PROBLEM_BASE + slug for slug in PROBLEM_TYPES]
    assert problem["job_status"]["enum"] == [*STATES, None]
    assert schemas["Job"]["properties"]["status"]["enum"] == STATES
    assert schemas["Job"]["properties"]["request_encoding"]["enum"] == ENCODINGS
    assert schemas["Payload"]["properties"]["encoding"]["enum"] == ENCODINGS
    assert schemas["CreateJob"]["properties"]["encoding"]["enum"] == ENCODINGS
    assert schemas["JobResult"]["properties"]["status"]["enum"] == FINALS
    counts = schemas["Stats"]["properties"]["counts"]
    assert counts["required"] == STATES and list(counts["properties"]) == STATES
    assert schemas["Stats"]["properties"]["capped_at"]["const"] == COUNT_CAP
    retention = schemas["PruneRequest"]["properties"]["retention"]["anyOf"][0]
    assert list(retention["properties"]) == FINALS
    for name in ("deleted", "retention"):
        assert list(schemas["PruneResult"]["properties"][name]["properties"]) == FINALS
    assert doc["components"]["parameters"]["JobId"]["schema"]["maximum"] == MAX_JOB_ID
    assert doc["components"]["headers"]["WWW-Authenticate"]["description"] == AUTH_CHALLENGE
    listing = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert listing["status"]["items"]["enum"] == STATES
    assert listing["before"]["maximum"] == MAX_JOB_ID
    assert (listing["limit"]["maximum"], listing["limit"]["default"]) == (MAX_LIMIT, DEFAULT_LIMIT)


def test_the_engine_in_the_file_agrees_with_the_code() -> None:
    """Create options, job and attempt fields, and the bulk bodies, as the code has them."""
    doc = _document()
    schemas = doc["components"]["schemas"]
    create = schemas["CreateJob"]["properties"]
    for name, kind in OPTION_TYPES.items():
        assert create[name]["type"] == ["string" if kind == "time" else kind, "null"], name
    assert create["run_at"]["format"] == "date-time"
    job = schemas["Job"]["properties"]
    for priority in (create["priority"], job["priority"]):
        assert (priority["minimum"], priority["maximum"]) == (MIN_PRIORITY, MAX_PRIORITY)
    assert create["max_attempts"]["maximum"] == MAX_ATTEMPTS_LIMIT
    for name in ("delay_seconds", "backoff_seconds", "timeout_seconds"):
        assert create[name]["maximum"] == MAX_SECONDS

    now = datetime.now(UTC)
    summary = job_summary(Job(1, "t", "/e", Encoding.JSON, JobState.QUEUED, 0, {}, now, now))
    assert schemas["Job"]["required"] == list(summary) == list(job)
    attempt = attempt_document(Attempt(job_id=1, attempt=1, node="n", started_at=now))
    assert schemas["Attempt"]["required"] == list(attempt) == list(schemas["Attempt"]["properties"])
    outcomes = schemas["Attempt"]["properties"]["outcome"]["enum"]
    assert outcomes == [*(o.value for o in AttemptOutcome), None]

    for action, name in (("retry", "BulkRetry"), ("cancel", "BulkCancel")):
        properties = schemas[name]["properties"]
        assert list(properties) == list(BULK_FIELDS)
        one, many = properties["status"]["anyOf"]
        assert one["enum"] == many["items"]["enum"] == [s.value for s in BULK_STATES[action]]
        operation = doc["paths"][f"/api/v1/jobs/{action}"]["post"]
        assert f"{BULK_MAX_JOBS}" in operation["description"]
    assert f"{BULK_MAX_JOBS}" in schemas["BulkResult"]["properties"]["more"]["description"]


def test_every_problem_answer_has_the_status_of_its_types() -> None:
    doc = _document()
    answers = [
        (code, answer)
        for item in doc["paths"].values()
        for op in item.values()
        for code, answer in op["responses"].items()
    ]
    answers += list(doc["components"]["responses"].items())
    checked = 0
    for code, answer in answers:
        content = answer.get("content", {})
        if PROBLEM_MEDIA_TYPE not in content:
            continue
        exact = content[PROBLEM_MEDIA_TYPE]["schema"]["allOf"][1]["properties"]
        slugs = [t.removeprefix(PROBLEM_BASE) for t in exact["type"]["enum"]]
        assert {PROBLEM_TYPES[s][0] for s in slugs} == {exact["status"]["const"]} == {int(code)}
        assert all(f"`{s}`" in answer["description"] for s in slugs)
        checked += 1
    assert checked >= 12
