"""What the client returns: frozen dataclasses read from the node's JSON.

Each keeps the document it was read from in `raw` (the node's JSON, as sent), so a field added
to the REST API later is never out of reach.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

JobStatus = Literal["scheduled", "queued", "running", "done", "error", "cancelled"]
CancelOutcome = Literal["cancelled", "cancel_requested"]
# How one run of a job ended: timeout is a run past its timeout_seconds, lost one whose node
# died, given_back one whose node stopped and put the job back in the queue.
AttemptOutcome = Literal["done", "error", "timeout", "lost", "cancelled", "given_back"]
BulkAction = Literal["retry", "cancel"]
# What a schedule does about fire times no node was up for: none of them, the latest once, all.
Misfire = Literal["skip", "once", "all"]
# Where a concurrency key's limit comes from: its named limit, or its endpoints' concurrency_limit.
LimitSource = Literal["named", "endpoint"]
# What runs an endpoint's jobs: Python in the node, an upstream HTTP service (the endpoints
# file), or an upstream Kinetica.
EndpointKind = Literal["python", "http", "kinetica-upstream"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A job's request or response.

    `value` is the payload as JSON: the value of a `json` payload, or the record the
    endpoint's Avro schema decoded from a `binary` or `snappy` one (None when there is no
    schema). `data` holds a binary payload's bytes; `text` JSON text that does not parse.
    """

    encoding: str
    value: Any = None
    data: bytes | None = None
    text: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Payload | None:
        if doc is None:
            return None
        data = doc.get("base64")
        return cls(
            encoding=str(doc.get("encoding", "json")),
            value=doc.get("json"),
            data=base64.b64decode(data) if data is not None else None,
            text=doc.get("text"),
        )


@dataclass(frozen=True, slots=True)
class Job:
    """One job. `request`, `response` and `options` come only with a single job (get, wait
    and retry); the summaries of create and list leave them None.

    `priority`, `run_at`, `max_attempts`, `retry_errors`, `backoff_seconds` and
    `timeout_seconds` are the job's engine options (its own, else its endpoint's or node's);
    `run_at` is when a `scheduled` job becomes due, `last_error` the error of its last failed
    attempt while it waits to run again. `schedule` names the schedule whose fire made the job
    (single jobs only).
    """

    id: int
    tag: str
    endpoint: str
    status: JobStatus
    progress: int
    finished: bool
    error: str | None
    status_map: dict[str, Any]
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime | None
    retry_errors: bool
    backoff_seconds: float | None
    timeout_seconds: float | None
    last_error: str | None
    cancel_requested: bool
    remove_on_complete: bool
    request_encoding: str
    created_by: str | None
    node: str | None
    created_at: datetime | None
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    options: dict[str, Any] | None = None
    request: Payload | None = None
    response: Payload | None = None
    schedule: str | None = None
    # Only for create: True when this create made the job, False when a create with the same
    # tag and request had made it before (the node answered 200, not 201).
    new: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, new: bool | None = None) -> Job:
        return cls(
            id=int(doc["id"]),
            tag=str(doc["tag"]),
            endpoint=str(doc["endpoint"]),
            status=cast(JobStatus, doc["status"]),
            progress=int(doc.get("progress") or 0),
            finished=bool(doc.get("finished")),
            error=doc.get("error"),
            status_map=dict(doc.get("status_map") or {}),
            attempt=int(doc.get("attempt") or 0),
            max_attempts=int(doc.get("max_attempts") or 0),
            priority=int(doc.get("priority") or 0),
            run_at=_time(doc.get("run_at")),
            retry_errors=bool(doc.get("retry_errors")),
            backoff_seconds=_seconds(doc.get("backoff_seconds")),
            timeout_seconds=_seconds(doc.get("timeout_seconds")),
            last_error=doc.get("last_error"),
            cancel_requested=bool(doc.get("cancel_requested")),
            remove_on_complete=bool(doc.get("remove_on_complete")),
            request_encoding=str(doc.get("request_encoding") or "json"),
            created_by=doc.get("created_by"),
            node=doc.get("node"),
            created_at=_time(doc.get("created_at")),
            started_at=_time(doc.get("started_at")),
            updated_at=_time(doc.get("updated_at")),
            finished_at=_time(doc.get("finished_at")),
            duration_seconds=doc.get("duration_seconds"),
            options=doc.get("options"),
            request=Payload.from_json(doc.get("request")),
            response=Payload.from_json(doc.get("response")),
            schedule=doc.get("schedule"),
            new=new,
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a finished job ended: `result` is its response (None for an error job, or a job
    that answered nothing), `error` the message of an `error` job."""

    id: int
    tag: str
    status: JobStatus
    result: Payload | None
    error: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobResult:
        return cls(
            id=int(doc["id"]),
            tag=str(doc["tag"]),
            status=cast(JobStatus, doc["status"]),
            result=Payload.from_json(doc.get("result")),
            error=doc.get("error"),
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing, newest first. `next_before` is the `before` of the next page;
    None on the last one."""

    items: tuple[Job, ...]
    next_before: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobPage:
        after = doc.get("next_before")
        return cls(
            items=tuple(Job.from_json(item) for item in doc["items"]),
            next_before=int(after) if after is not None else None,
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class CancelResult:
    """`cancelled`: the job was queued and is now cancelled; `cancel_requested`: it is
    running, is asked to stop, and will end `cancelled`."""

    id: int
    outcome: CancelOutcome
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CancelResult:
        return cls(id=int(doc["id"]), outcome=cast(CancelOutcome, doc["outcome"]), raw=doc)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job, from `job_attempts`: `outcome` and `finished_at` are None while it
    runs; `error` is the message of a failed (or timed-out, lost) run."""

    job_id: int
    attempt: int
    node: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    outcome: AttemptOutcome | None
    error: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, job_id: int) -> Attempt:
        return cls(
            job_id=job_id,
            attempt=int(doc["attempt"]),
            node=str(doc.get("node") or ""),
            started_at=datetime.fromisoformat(doc["started_at"]),
            finished_at=_time(doc.get("finished_at")),
            duration_seconds=_seconds(doc.get("duration_seconds")),
            outcome=cast(AttemptOutcome | None, doc.get("outcome")),
            error=doc.get("error"),
            raw=doc,
        )

    @classmethod
    def list_from_json(cls, doc: dict[str, Any]) -> list[Attempt]:
        """The attempts of GET /jobs/{id}/attempts, first to last."""
        job_id = int(doc["id"])
        return [cls.from_json(item, job_id=job_id) for item in doc["attempts"]]


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a retry_matching or cancel_matching did: `matched` jobs, how many ended each way
    (`outcomes`: "retried"; "cancelled", "cancel_requested"), and `more` when the node
    stopped at its limit per call with jobs still matching: call again for the rest."""

    action: BulkAction
    matched: int
    outcomes: dict[str, int]
    more: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BulkResult:
        return cls(
            action=cast(BulkAction, doc["action"]),
            matched=int(doc["matched"]),
            outcomes={str(k): int(v) for k, v in (doc.get("outcomes") or {}).items()},
            more=bool(doc.get("more")),
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """Jobs per state (your own, unless you are an administrator). A count above `capped_at`
    means "more than capped_at"."""

    counts: dict[str, int]
    capped_at: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Stats:
        counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items()}
        return cls(counts=counts, capped_at=int(doc.get("capped_at") or 0), raw=doc)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune deleted per state, under which retention; `skipped`: another node was
    pruning, so this one stopped early."""

    deleted: dict[str, int]
    total: int
    skipped: bool
    retention: dict[str, str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PruneResult:
        deleted = {str(k): int(v) for k, v in (doc.get("deleted") or {}).items()}
        return cls(
            deleted=deleted,
            total=int(doc.get("total", sum(deleted.values()))),
            skipped=bool(doc.get("skipped")),
            retention={str(k): str(v) for k, v in (doc.get("retention") or {}).items()},
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring schedule: the job each fire creates (`endpoint`, its request and `options`)
    and when it fires (`cron` in `timezone`, or every `every_seconds`, from `start_at` to
    `end_at`).

    `payload` is the request of a `json` schedule, `payload_bytes` that of a `binary` or
    `snappy` one. `options` are each job's options as the node stores them (text).
    `next_fire_at` is None when no fire time is left; `last_job_id` is the job of the last
    fire (or fire now).
    """

    name: str
    endpoint: str
    encoding: str
    payload: Any
    payload_bytes: bytes | None
    remove_on_complete: bool
    options: dict[str, str]
    cron: str | None
    every_seconds: float | None
    timezone: str
    misfire: Misfire
    start_at: datetime | None
    end_at: datetime | None
    enabled: bool
    source: str
    created_by: str | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_job_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Schedule:
        data = doc.get("payload_base64")
        last_job = doc.get("last_job_id")
        return cls(
            name=str(doc["name"]),
            endpoint=str(doc["endpoint"]),
            encoding=str(doc.get("encoding") or "json"),
            payload=doc.get("payload"),
            payload_bytes=base64.b64decode(data) if data is not None else None,
            remove_on_complete=bool(doc.get("remove_on_complete")),
            options={str(k): str(v) for k, v in (doc.get("options") or {}).items()},
            cron=doc.get("cron"),
            every_seconds=_seconds(doc.get("every_seconds")),
            timezone=str(doc.get("timezone") or "UTC"),
            misfire=cast(Misfire, doc.get("misfire") or "skip"),
            start_at=_time(doc.get("start_at")),
            end_at=_time(doc.get("end_at")),
            enabled=bool(doc["enabled"]),
            source=str(doc.get("source") or ""),
            created_by=doc.get("created_by"),
            next_fire_at=_time(doc.get("next_fire_at")),
            last_fire_at=_time(doc.get("last_fire_at")),
            last_job_id=int(last_job) if last_job is not None else None,
            created_at=_time(doc.get("created_at")),
            updated_at=_time(doc.get("updated_at")),
            raw=doc,
        )

    @classmethod
    def list_from_json(cls, doc: dict[str, Any]) -> list[Schedule]:
        """The schedules of GET /schedules, by name."""
        return [cls.from_json(item) for item in doc["schedules"]]


@dataclass(frozen=True, slots=True)
class Limit:
    """One concurrency key now: `max_running`, the most of its jobs that run at once on all
    nodes (None: no limit; 0: they are held), and where it comes from (`source`: its named
    limit, the strictest `concurrency_limit` of its jobs' endpoints, or None); its `running`
    and `queued` jobs (everyone's). `updated_at` and `updated_by` tell who set its named
    limit, when it has one."""

    key: str
    max_running: int | None
    source: LimitSource | None
    running: int
    queued: int
    updated_at: datetime | None
    updated_by: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Limit:
        limit = doc.get("max_running")
        return cls(
            key=str(doc["key"]),
            max_running=int(limit) if limit is not None else None,
            source=cast("LimitSource | None", doc.get("source")),
            running=int(doc.get("running") or 0),
            queued=int(doc.get("queued") or 0),
            updated_at=_time(doc.get("updated_at")),
            updated_by=doc.get("updated_by"),
            raw=doc,
        )

    @classmethod
    def list_from_json(cls, doc: dict[str, Any]) -> list[Limit]:
        """The keys of GET /limits, by key."""
        return [cls.from_json(item) for item in doc["limits"]]


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint a node can run jobs for: `kind` says what runs them and `upstream` the host
    an upstream endpoint calls (never more of its URL). `raw_payload`: its handler takes the
    payload as sent (the listing's `raw`). The schemas are the Avro schemas of its request
    and response, when it has them."""

    name: str
    kind: EndpointKind
    upstream: str | None
    description: str
    retryable: bool
    raw_payload: bool
    max_attempts: int | None
    request_schema: Any
    response_schema: Any
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EndpointInfo:
        attempts = doc.get("max_attempts")
        return cls(
            name=str(doc["name"]),
            kind=cast(EndpointKind, doc.get("kind") or "python"),
            upstream=doc.get("upstream"),
            description=str(doc.get("description") or ""),
            retryable=bool(doc.get("retryable", True)),
            raw_payload=bool(doc.get("raw")),
            max_attempts=int(attempts) if attempts is not None else None,
            request_schema=doc.get("request_schema"),
            response_schema=doc.get("response_schema"),
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class EndpointList:
    """The endpoints of a node, by name. `other_upstream` is the host of the upstream Kinetica
    that runs every name none of them declares (`other_kind`), or None when other names are
    refused."""

    items: list[EndpointInfo]
    other_kind: EndpointKind | None
    other_upstream: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EndpointList:
        other = doc.get("other_names") or {}
        return cls(
            items=[EndpointInfo.from_json(item) for item in doc["items"]],
            other_kind=cast("EndpointKind | None", other.get("kind")),
            other_upstream=other.get("upstream"),
            raw=doc,
        )

    def names(self) -> list[str]:
        return [item.name for item in self.items]


def _time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the node (UTC, with an offset or Z)."""
    return datetime.fromisoformat(value) if value else None


def _seconds(value: Any) -> float | None:
    return float(value) if value is not None else None
