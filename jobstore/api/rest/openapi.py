"""The OpenAPI 3.1 document of /api/v1, written by hand to match routes.py exactly.

A test fuzzes the API against this document (tests/test_rest_schemathesis.py), so a route that
answers something the document does not say fails the build.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from jobstore import __version__
from jobstore.api.rest.inputs import DEFAULT_LIMIT, MAX_JOB_ID, MAX_LIMIT
from jobstore.api.rest.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, PROBLEM_TYPES
from jobstore.core.jobs import COUNT_CAP
from jobstore.domain.models import FINAL_STATES, Encoding, JobState

STATES = [s.value for s in JobState]
FINALS = sorted(s.value for s in FINAL_STATES)
ENCODINGS = [e.value for e in Encoding]
TAG_PATTERN = "^[A-Za-z0-9_-]{1,128}$"
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
DURATION_PATTERN = "^(?:[0-9]+(?:\\.[0-9]+)?[smhdw]|forever)$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(description: str, schema: dict[str, Any], **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = {
            name: {"$ref": f"#/components/headers/{h}"} for name, h in headers.items()
        }
    return answer


def _problem(description: str, *slugs: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """An error answer: a Problem of one of these types (all of one HTTP status)."""
    [status] = {PROBLEM_TYPES[s][0] for s in slugs}
    kinds = ", ".join(f"`{s}`" for s in slugs)
    exact: dict[str, Any] = {
        "properties": {
            "type": {"enum": [PROBLEM_BASE + s for s in slugs]},
            "status": {"const": status},
        }
    }
    if required:
        exact["required"] = list(required)
    return {
        "description": f"{description} (problem type {kinds}).",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"allOf": [ref("Problem"), exact]}}},
    }


def _responses(*names: str) -> dict[str, Any]:
    """Shared error answers by status code."""
    return {code: {"$ref": f"#/components/responses/{code}"} for code in names}


_TIME = {"type": "string", "format": "date-time"}
_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem; extensions like job_id or status depend on type.",
        "required": ["type", "title", "status", "detail", "instance"],
        "properties": {
            "type": {
                "type": "string",
                "enum": [PROBLEM_BASE + slug for slug in PROBLEM_TYPES],
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request's path."},
            "errors": {"type": "array", "items": ref("FieldError")},
            "job_id": {"type": ["integer", "null"]},
            "tag": {"type": "string"},
            "job_status": {
                "type": ["string", "null"],
                "enum": [*STATES, None],
                "description": "The job's state (`status` is the HTTP status, as RFC 9457 says).",
            },
            "finished_at": _TIME,
            "outcome": {"type": "string", "enum": ["already_done"]},
            "endpoint": {"type": "string"},
            "max_body_bytes": {"type": "integer"},
            "accepted": {"type": "array", "items": {"type": "string"}},
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["in", "field", "message"],
        "properties": {
            "in": {"type": "string", "enum": ["body", "query", "header", "path"]},
            "field": {"type": "string", "description": "Empty for the body as a whole."},
            "message": {"type": "string"},
        },
    },
    "Job": {
        "type": "object",
        "description": "A job without its payloads (what listings show).",
        "required": [
            "id",
            "tag",
            "endpoint",
            "status",
            "progress",
            "status_map",
            "error",
            "attempt",
            "max_attempts",
            "cancel_requested",
            "remove_on_complete",
            "request_encoding",
            "created_by",
            "node",
            "created_at",
            "started_at",
            "updated_at",
            "finished_at",
            "duration_seconds",
            "finished",
        ],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "tag": {"type": "string"},
            "endpoint": {"type": "string"},
            "status": {"type": "string", "enum": STATES},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "status_map": {"type": "object", "additionalProperties": {"type": "string"}},
            "error": {"type": ["string", "null"], "description": "The message of an error job."},
            "attempt": _COUNT,
            "max_attempts": _COUNT,
            "cancel_requested": {"type": "boolean"},
            "remove_on_complete": {"type": "boolean"},
            "request_encoding": {"type": "string", "enum": ENCODINGS},
            "created_by": {"type": ["string", "null"]},
            "node": {"type": ["string", "null"], "description": "The node running it, or last."},
            "created_at": _TIME,
            "started_at": nullable(_TIME),
            "updated_at": _TIME,
            "finished_at": nullable(_TIME),
            "duration_seconds": {"type": ["number", "null"]},
            "finished": {"type": "boolean"},
        },
    },
    "Payload": {
        "type": "object",
        "description": (
            "A request or response: JSON ones as `json` (or `text` when not valid JSON), binary "
            "ones as `base64` plus `json` when the endpoint's Avro schema decodes them."
        ),
        "required": ["encoding"],
        "properties": {
            "encoding": {"type": "string", "enum": ENCODINGS},
            "json": {},
            "text": {"type": "string"},
            "base64": {"type": "string"},
        },
    },
    "JobDetail": {
        "allOf": [
            ref("Job"),
            {
                "type": "object",
                "required": ["options", "request", "response"],
                "properties": {
                    "options": {"type": "object", "additionalProperties": {"type": "string"}},
                    "request": nullable(ref("Payload")),
                    "response": nullable(ref("Payload")),
                },
            },
        ]
    },
    "JobList": {
        "type": "object",
        "required": ["items", "next", "next_before"],
        "properties": {
            "items": {"type": "array", "items": ref("Job")},
            "next": {
                "type": ["string", "null"],
                "description": "Relative URL of the next (older) page; null on the last page.",
            },
            "next_before": {"type": ["integer", "null"], "minimum": 1},
        },
    },
    "JobResult": {
        "type": "object",
        "required": ["id", "tag", "status", "result", "error"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "tag": {"type": "string"},
            "status": {"type": "string", "enum": FINALS},
            "result": nullable(ref("Payload")),
            "error": {"type": ["string", "null"]},
        },
    },
    "CancelResult": {
        "type": "object",
        "required": ["id", "outcome"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "outcome": {
                "type": "string",
                "enum": ["cancelled", "cancel_requested"],
                "description": (
                    "cancelled: it was queued and is now cancelled; cancel_requested: it is "
                    "running and will end cancelled once its handler stops."
                ),
            },
        },
    },
    "Stats": {
        "type": "object",
        "required": ["counts", "capped_at"],
        "properties": {
            "counts": {
                "type": "object",
                "required": STATES,
                "properties": {s: _COUNT for s in STATES},
                "additionalProperties": False,
            },
            "capped_at": {
                "type": "integer",
                "const": COUNT_CAP,
                "description": "A count above this means 'more than capped_at'.",
            },
        },
    },
    "Endpoint": {
        "type": "object",
        "required": [
            "name",
            "description",
            "retryable",
            "raw",
            "max_attempts",
            "request_schema",
            "response_schema",
        ],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "retryable": {"type": "boolean"},
            "raw": {"type": "boolean"},
            "max_attempts": {"type": ["integer", "null"], "minimum": 1},
            "request_schema": {"type": ["object", "null"], "description": "Avro schema."},
            "response_schema": {"type": ["object", "null"], "description": "Avro schema."},
        },
    },
    "EndpointList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref("Endpoint")}},
    },
    "CreateJob": {
        "type": "object",
        "description": (
            "A new job. Give its request as `payload` (any JSON value; `{}` when absent) or as "
            "`payload_base64` (bytes: Avro for an endpoint with a schema, snappy-compressed "
            "Avro with encoding snappy), not both."
        ),
        "required": ["endpoint"],
        "additionalProperties": False,
        "properties": {
            "endpoint": {
                "type": "string",
                "minLength": 1,
                "description": "One of GET /api/v1/endpoints.",
            },
            "payload": {"description": "The job's request as JSON (encoding json)."},
            "payload_base64": {"type": "string", "pattern": BASE64_PATTERN},
            "encoding": {
                "type": "string",
                "enum": ENCODINGS,
                "description": "json with payload (the default); binary (the default) or "
                "snappy with payload_base64.",
            },
            "tag": {
                "type": "string",
                "pattern": TAG_PATTERN,
                "description": "Idempotency: a repeated create with the same tag and request "
                "answers the existing job (200).",
            },
            "remove_on_complete": {"type": "boolean", "default": False},
        },
        "not": {"required": ["payload", "payload_base64"]},
        "if": {"required": ["payload_base64"]},
        "then": {"properties": {"encoding": {"enum": ["binary", "snappy"]}}},
        "else": {"properties": {"encoding": {"enum": ["json"]}}},
    },
    "PruneRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "retention": nullable(
                {
                    "type": "object",
                    "description": "How long finished jobs of each state are kept; a state "
                    "left out is not pruned. '0s' deletes every finished job of that state.",
                    "additionalProperties": False,
                    "properties": {
                        s: {"type": "string", "pattern": DURATION_PATTERN} for s in FINALS
                    },
                }
            )
        },
    },
    "PruneResult": {
        "type": "object",
        "required": ["deleted", "total", "skipped", "retention"],
        "properties": {
            "deleted": {
                "type": "object",
                "additionalProperties": False,
                "properties": {s: _COUNT for s in FINALS},
            },
            "total": _COUNT,
            "skipped": {
                "type": "boolean",
                "description": "True when another node was pruning, so this run stopped early.",
            },
            "retention": {
                "type": "object",
                "additionalProperties": False,
                "properties": {s: {"type": "string"} for s in FINALS},
            },
        },
    },
}

HEADERS: dict[str, Any] = {
    "Location": {
        "description": "The job's URL.",
        "required": True,
        "schema": {"type": "string", "pattern": "^/api/v1/jobs/[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": 'Basic realm="jobstore", Bearer realm="jobstore"',
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}

RESPONSES: dict[str, Any] = {
    "400": _problem(
        "Invalid input; `errors` names each bad field", "invalid-request", required=["errors"]
    ),
    "401": {
        **_problem("Missing or wrong credentials (only when authentication is on)", "unauthorized"),
        "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}},
    },
    "403": _problem("Allowed to administrators only", "forbidden"),
    "404": _problem(
        "No such job, or another user's job; or no such path", "job-not-found", "not-found"
    ),
    "410": _problem(
        "The job finished and was removed (remove_on_complete); job_id, tag, job_status "
        "and finished_at say how it ended",
        "job-removed",
    ),
    "413": _problem("The body is larger than the node's limit", "payload-too-large"),
    "415": _problem("The body is not application/json", "unsupported-media-type"),
    "503": {
        **_problem(
            "The database did not answer; retry (a create with a tag is safe to repeat)",
            "service-unavailable",
        ),
        "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
    },
}

PARAMETERS: dict[str, Any] = {
    "JobId": {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
    },
    "Tag": {
        "name": "tag",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": TAG_PATTERN},
    },
}


def _wait(maximum: float) -> dict[str, Any]:
    return {
        "name": "wait",
        "in": "query",
        "description": "Long poll: answer as soon as the job has finished, or after this many "
        "seconds with the job as it is then.",
        "schema": {"type": "number", "minimum": 0, "maximum": maximum, "default": 0},
    }


def _paths(max_wait: float) -> dict[str, Any]:
    job_id = {"$ref": "#/components/parameters/JobId"}
    get_job = {
        "200": _json("The job, with its request and response.", ref("JobDetail")),
        **_responses("400", "401", "404", "410", "503"),
    }
    return {
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json("The OpenAPI document.", {"type": "object"})},
            }
        },
        "/api/v1/jobs": {
            "post": {
                "operationId": "createJob",
                "summary": "Create a job",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "description": "Another way to give the job's tag.",
                        "schema": {"type": "string", "pattern": TAG_PATTERN},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("CreateJob")}},
                },
                "responses": {
                    "201": _json("Created.", ref("Job"), Location="Location"),
                    "200": _json(
                        "The same create was made before under this tag: that job.",
                        ref("Job"),
                        Location="Location",
                    ),
                    "400": _problem(
                        "Invalid input, or an endpoint this node does not know",
                        "invalid-request",
                        "unknown-endpoint",
                    ),
                    **_responses("401"),
                    "409": _problem(
                        "The tag belongs to a different request (or another user)", "tag-conflict"
                    ),
                    **_responses("413", "415", "503"),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "description": "Only jobs in these states (repeat it, or separate "
                        "states with commas).",
                        "style": "form",
                        "explode": True,
                        "schema": {"type": "array", "items": {"type": "string", "enum": STATES}},
                    },
                    {"name": "endpoint", "in": "query", "schema": {"type": "string"}},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}},
                    {"name": "created_after", "in": "query", "schema": _TIME},
                    {"name": "created_before", "in": "query", "schema": _TIME},
                    {
                        "name": "before",
                        "in": "query",
                        "description": "Keyset paging: only jobs with a smaller id.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": {
                    "200": _json("One page of jobs.", ref("JobList")),
                    **_responses("400", "401", "503"),
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job by id",
                "parameters": [job_id, _wait(max_wait)],
                "responses": get_job,
            }
        },
        "/api/v1/jobs/tag/{tag}": {
            "get": {
                "operationId": "getJobByTag",
                "summary": "A job by tag",
                "parameters": [{"$ref": "#/components/parameters/Tag"}, _wait(max_wait)],
                "responses": get_job,
            }
        },
        "/api/v1/jobs/{job_id}/result": {
            "get": {
                "operationId": "getJobResult",
                "summary": "The outcome of a finished job",
                "parameters": [job_id],
                "responses": {
                    "200": _json("The job's result or error.", ref("JobResult")),
                    **_responses("401", "404"),
                    "409": _problem(
                        "The job has not finished; `job_status` says where it is",
                        "job-not-finished",
                    ),
                    **_responses("410", "503"),
                },
            }
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job",
                "parameters": [job_id],
                "responses": {
                    "202": _json("Cancelled, or asked to stop.", ref("CancelResult")),
                    **_responses("401", "404"),
                    "409": _problem(
                        "The job has already finished (`outcome` already_done)", "job-finished"
                    ),
                    **_responses("503"),
                },
            }
        },
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Jobs per state",
                "responses": {
                    "200": _json("Counts (the caller's own jobs unless admin).", ref("Stats")),
                    **_responses("401", "503"),
                },
            }
        },
        "/api/v1/endpoints": {
            "get": {
                "operationId": "listEndpoints",
                "summary": "The endpoints this node runs",
                "responses": {
                    "200": _json("Endpoints by name.", ref("EndpointList")),
                    **_responses("401", "503"),
                },
            }
        },
        "/api/v1/prune": {
            "post": {
                "operationId": "prune",
                "summary": "Delete finished jobs past their retention now (admins)",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref("PruneRequest")}},
                },
                "responses": {
                    "200": _json("What was deleted.", ref("PruneResult")),
                    **_responses("400", "401", "403"),
                    "409": _problem("This node has no pruner", "pruning-disabled"),
                    **_responses("413", "415", "503"),
                },
            }
        },
    }


def _schemas(endpoints: Sequence[str]) -> dict[str, Any]:
    if not endpoints:
        return SCHEMAS
    create = copy.deepcopy(SCHEMAS["CreateJob"])
    create["properties"]["endpoint"]["enum"] = list(endpoints)
    return {**SCHEMAS, "CreateJob": create}


def openapi_document(
    *, max_wait_seconds: float, auth_required: bool, endpoints: Sequence[str] = ()
) -> dict[str, Any]:
    """The document for a node with these settings: its wait limit, whether auth is on, and
    the endpoints it can create jobs for (listed in CreateJob.endpoint when given)."""
    security: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}]
    if not auth_required:
        security.append({})  # authentication is off on this node: credentials are optional
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobstore REST API",
            "version": __version__,
            "description": "Create jobs, follow them and fetch their results. Errors are RFC "
            "9457 problems (application/problem+json). See docs/rest.md.",
        },
        "paths": _paths(max_wait_seconds),
        "components": {
            "schemas": _schemas(endpoints),
            "responses": RESPONSES,
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": security,
    }
