"""Jobs and schedules as JSON documents, shared by the REST API and the dashboard (not a facade
itself).

A payload is shown the way a person wants to read it: JSON jobs as their JSON value, binary
jobs as base64 plus, when the endpoint has an Avro schema, the decoded record.
"""

from __future__ import annotations

import base64
import contextlib
from datetime import datetime
from typing import Any

from jobstore.codecs import Schema, jsontext, unwrap_bytes
from jobstore.core.schedules import NAME as SCHEDULE_NAME
from jobstore.domain.errors import JobstoreError, UnknownEndpoint
from jobstore.domain.inputs import MAX_NESTING_CEILING
from jobstore.domain.models import FINAL_STATES, Attempt, Encoding, Job, JobState, Payload
from jobstore.domain.schedules import Schedule
from jobstore.endpoints.registry import EndpointRegistry

JOBS_PATH = "/api/v1/jobs"
SCHEDULES_PATH = "/api/v1/schedules"


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def job_location(job_id: int) -> str:
    return f"{JOBS_PATH}/{job_id}"


def schedule_location(name: str) -> str:
    return f"{SCHEDULES_PATH}/{name}"


def job_summary(job: Job) -> dict[str, Any]:
    """The fields every listing shows: no payloads."""
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = (job.finished_at - job.started_at).total_seconds()
    return {
        "id": job.job_id,
        "tag": job.job_tag,
        "endpoint": job.endpoint,
        "status": job.status.value,
        "progress": job.progress,
        "status_map": job.status_map,
        "error": job.status_map.get("error_message") if job.status is JobState.ERROR else None,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "run_at": iso(job.run_at),
        "retry_errors": job.retry_errors,
        "backoff_seconds": job.backoff_seconds,
        "timeout_seconds": job.timeout_seconds,
        "last_error": job.status_map.get("last_error"),
        "cancel_requested": job.cancel_requested,
        "remove_on_complete": job.remove_on_complete,
        "request_encoding": job.request_encoding.value,
        "created_by": job.created_by,
        "node": job.owner,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "updated_at": iso(job.updated_at),
        "finished_at": iso(job.finished_at),
        "duration_seconds": duration,
        "finished": job.status in FINAL_STATES,
    }


def attempt_document(attempt: Attempt) -> dict[str, Any]:
    """One run of a job (a row of job_attempts)."""
    duration = None
    if attempt.finished_at is not None:
        duration = (attempt.finished_at - attempt.started_at).total_seconds()
    return {
        "attempt": attempt.attempt,
        "node": attempt.node,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration_seconds": duration,
        "outcome": attempt.outcome.value if attempt.outcome else None,
        "error": attempt.error_message,
    }


def payload_document(payload: Payload, schema: Schema | None) -> dict[str, Any]:
    """{"encoding", "json"} for JSON text; {"encoding", "base64", "json"?} for bytes."""
    if payload.encoding is Encoding.JSON:
        text = payload.text or ""
        try:
            # Checked at its create under that node's --max-nesting: here only the ceiling. A
            # row stored before the checks that fails them is shown as its text.
            value = jsontext.loads(text, what="payload", max_nesting=MAX_NESTING_CEILING)
            return {"encoding": "json", "json": value}
        except JobstoreError:
            return {"encoding": "json", "text": text}
    data = payload.data or b""
    doc: dict[str, Any] = {
        "encoding": payload.encoding.value,
        "base64": base64.b64encode(data).decode("ascii"),
    }
    if schema is not None:
        with contextlib.suppress(JobstoreError):  # undecodable: shown as base64 only
            doc["json"] = _jsonable(schema.decode(unwrap_bytes(payload)))
    return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _schemas(registry: EndpointRegistry, endpoint: str) -> tuple[Schema | None, Schema | None]:
    try:
        ep = registry.get(endpoint)
    except UnknownEndpoint:
        return None, None  # served by another node's endpoints: show bytes only
    if ep.raw:
        return None, None
    return ep.request_schema, ep.response_schema


def job_result(job: Job, registry: EndpointRegistry) -> dict[str, Any] | None:
    """The stored response, or None when the job has none (yet)."""
    if job.response_encoding is None:
        return None
    _, response_schema = _schemas(registry, job.endpoint)
    payload = Payload(job.response_encoding, job.response_data, job.response_text)
    return payload_document(payload, response_schema)


def job_detail(job: Job, registry: EndpointRegistry) -> dict[str, Any]:
    """Everything about one job: the summary plus request, response and options."""
    request_schema, _ = _schemas(registry, job.endpoint)
    has_request = job.request_data is not None or job.request_text is not None
    detail: dict[str, Any] = {
        **job_summary(job),
        "options": job.options,
        "request": payload_document(job.request, request_schema) if has_request else None,
        "response": job_result(job, registry),
    }
    # A schedule's fire names it in the job's options (core/schedules.py); a name no schedule
    # could have (any create through Kinetica may set the option) gets no link.
    schedule = job.options.get("schedule")
    if isinstance(schedule, str) and SCHEDULE_NAME.fullmatch(schedule):
        detail["schedule"] = schedule
        detail["links"] = {"schedule": schedule_location(schedule)}
    return detail


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    """A recurring schedule: the job each fire creates, when it fires, where it stands."""
    payload: dict[str, Any]
    if schedule.request_encoding == Encoding.JSON.value:
        try:
            payload = {"payload": jsontext.loads(schedule.request_text or "", what="payload")}
        except JobstoreError:  # only a hand-edited row: the core refuses it at create
            payload = {"payload": None}
    else:
        data = schedule.request_data or b""
        payload = {"payload_base64": base64.b64encode(data).decode("ascii")}
    last_job = schedule.last_job_id
    return {
        "name": schedule.name,
        "endpoint": schedule.endpoint,
        "encoding": schedule.request_encoding,
        **payload,
        "remove_on_complete": _true(schedule.options.get("remove_job_on_complete")),
        "options": schedule.options,
        "cron": schedule.cron,
        "every_seconds": schedule.every_seconds,
        "timezone": schedule.timezone,
        "misfire": schedule.misfire.value,
        "start_at": iso(schedule.start_at),
        "end_at": iso(schedule.end_at),
        "enabled": schedule.enabled,
        "source": schedule.source,
        "created_by": schedule.created_by,
        "next_fire_at": iso(schedule.next_fire_at),
        "last_fire_at": iso(schedule.last_fire_at),
        "last_job_id": last_job,
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.updated_at),
        "links": {
            "self": schedule_location(schedule.name),
            "last_job": job_location(last_job) if last_job is not None else None,
        },
    }


def _true(option: str | None) -> bool:
    """A boolean job option, as the core reads one (core/jobs.py parse_bool)."""
    return (option or "").strip().lower() in ("true", "1", "yes")
