"""Job states, encodings and the Job value object. Pure: no I/O."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Runs of a retryable job whose node keeps dying, unless its endpoint or the node says otherwise.
DEFAULT_MAX_ATTEMPTS = 3
# What may sit between the nodes and PostgreSQL (--database-pooler): nothing, or a pooler
# (PgBouncer and the like) in session or in transaction mode.
POOLER_MODES = ("none", "session", "transaction")


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its `run_at` (a delay, or a retry's backoff)
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.DONE, JobState.ERROR, JobState.CANCELLED})
# Not finished: waiting for its time, waiting for a slot, or running.
ACTIVE_STATES = (JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING)
# Finished jobs a client may run again (POST /api/v1/jobs/{id}/retry).
RETRYABLE_STATES = frozenset({JobState.ERROR, JobState.CANCELLED})


class AttemptOutcome(enum.StrEnum):
    """How one run of a job ended: the `outcome` column of `job_attempts`."""

    DONE = "done"
    ERROR = "error"
    TIMEOUT = "timeout"  # ran longer than the job's timeout_seconds
    LOST = "lost"  # its node died or restarted; closed by the rescuer
    CANCELLED = "cancelled"
    GIVEN_BACK = "given_back"  # its node stopped and put the job back in the queue


class Encoding(enum.StrEnum):
    """How a job's request payload is encoded (Kinetica's `request_encoding`)."""

    BINARY = "binary"
    JSON = "json"
    SNAPPY = "snappy"

    @property
    def is_binary_family(self) -> bool:
        return self is not Encoding.JSON

    @property
    def response_encoding(self) -> Encoding:
        """Responses are stored in the request's family: Avro/bytes or JSON text."""
        return Encoding.JSON if self is Encoding.JSON else Encoding.BINARY


TAG_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_valid_tag(tag: str) -> bool:
    return TAG_PATTERN.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class Payload:
    """A request or response body: bytes for the binary family, text for JSON."""

    encoding: Encoding
    data: bytes | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the `jobs` table, as the core and the facades see it."""

    job_id: int
    job_tag: str
    endpoint: str
    request_encoding: Encoding
    status: JobState
    progress: int
    status_map: dict[str, str]
    created_at: datetime
    updated_at: datetime
    attempt: int = 0
    max_attempts: int = 1
    retryable: bool = True
    cancel_requested: bool = False
    remove_on_complete: bool = False
    priority: int = 0
    run_at: datetime | None = None
    retry_errors: bool = False
    backoff_seconds: float | None = None
    timeout_seconds: float | None = None
    concurrency_key: str | None = None
    upstream: str | None = None  # the kind of upstream that runs it (an undeclared endpoint)
    request_data: bytes | None = None
    request_text: str | None = None
    response_encoding: Encoding | None = None
    response_data: bytes | None = None
    response_text: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    owner: str | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_by: str | None = None
    project: str | None = None
    source_ip: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        enc = row.get("response_encoding")
        return cls(
            job_id=row["job_id"],
            job_tag=row["job_tag"],
            endpoint=row["endpoint"],
            request_encoding=Encoding(row["request_encoding"]),
            status=JobState(row["status"]),
            progress=row["progress"],
            status_map=dict(row.get("status_map") or {}),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            attempt=row.get("attempt", 0),
            max_attempts=row.get("max_attempts", 1),
            retryable=row.get("retryable", True),
            cancel_requested=row.get("cancel_requested", False),
            remove_on_complete=row.get("remove_on_complete", False),
            priority=row.get("priority", 0),
            run_at=row.get("run_at"),
            retry_errors=row.get("retry_errors", False),
            backoff_seconds=row.get("backoff_seconds"),
            timeout_seconds=row.get("timeout_seconds"),
            concurrency_key=row.get("concurrency_key"),
            upstream=row.get("upstream"),
            request_data=row.get("request_data"),
            request_text=row.get("request_text"),
            response_encoding=Encoding(enc) if enc else None,
            response_data=row.get("response_data"),
            response_text=row.get("response_text"),
            options=dict(row.get("options") or {}),
            owner=row.get("owner"),
            lease_expires_at=row.get("lease_expires_at"),
            started_at=row.get("started_at"),
            finished_at=row.get("finished_at"),
            created_by=row.get("created_by"),
            project=row.get("project"),
            source_ip=row.get("source_ip"),
        )

    @property
    def request(self) -> Payload:
        return Payload(self.request_encoding, self.request_data, self.request_text)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a job removed by remove_job_on_complete."""

    job_id: int
    job_tag: str
    endpoint: str
    status: JobState
    request_digest: str
    finished_at: datetime
    created_by: str | None = None
    project: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Tombstone:
        return cls(
            job_id=row["job_id"],
            job_tag=row["job_tag"],
            endpoint=row["endpoint"],
            status=JobState(row["status"]),
            request_digest=row["request_digest"],
            finished_at=row["finished_at"],
            created_by=row.get("created_by"),
            project=row.get("project"),
        )


@dataclass(frozen=True, slots=True)
class NewJob:
    """Everything needed to insert a job; built by the core after validation."""

    job_tag: str
    endpoint: str
    request: Payload
    request_digest: str
    options: dict[str, str]
    remove_on_complete: bool
    retryable: bool
    max_attempts: int
    created_by: str | None = None
    project: str | None = None
    source_ip: str | None = None
    tag_given: bool = True  # a generated tag cannot belong to a removed job
    priority: int = 0
    run_at: datetime | None = None  # scheduled until then; None: queued at once
    delay_seconds: float | None = None  # or: scheduled this long after the insert
    retry_errors: bool = False
    backoff_seconds: float | None = None
    timeout_seconds: float | None = None
    concurrency_key: str | None = None
    upstream: str | None = None  # the kind of upstream that runs it (an undeclared endpoint)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Which jobs a listing wants; every field narrows it, None means any."""

    states: tuple[JobState, ...] | None = None
    endpoint: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    created_by: str | None = None
    before_id: int | None = None  # keyset pagination: only jobs older than this id


@dataclass(frozen=True, slots=True)
class Inserted:
    """What a create found: a new job, or the job that already holds the tag."""

    job_id: int
    created: bool
    existing_digest: str | None = None  # of the job holding the tag, when not created
    existing_owner: str | None = None  # who created the job holding the tag
    existing_endpoint: str | None = None  # the holder's endpoint
    existing_encoding: str | None = None  # the holder's request encoding (None if removed)
    created_at: datetime | None = None  # when created: the time written into the new row


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job an executor has claimed: what it needs to run it and fence its writes."""

    job_id: int
    job_tag: str
    endpoint: str
    request: Payload
    attempt: int
    cancel_requested: bool
    max_attempts: int = 1
    retry_errors: bool = False
    backoff_seconds: float | None = None
    timeout_seconds: float | None = None
    concurrency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, as the executor reports it to the store.

    `status` is the job's final state, unless `retry_at` is set: then the job waits in
    `scheduled` (or `queued`, when the time has come) for its next attempt. `attempt` is what
    `job_attempts` records for this run (by default, the state's own name).
    """

    status: JobState
    response: Payload | None = None
    status_map: dict[str, str] = field(default_factory=dict)
    attempt: AttemptOutcome | None = None
    retry_at: datetime | None = None

    @property
    def attempt_outcome(self) -> AttemptOutcome:
        return self.attempt or _ATTEMPT_OUTCOME[self.status]

    @property
    def error_message(self) -> str | None:
        if self.status is JobState.DONE and self.retry_at is None:
            return None
        return self.status_map.get("error_message")


_ATTEMPT_OUTCOME = {
    JobState.DONE: AttemptOutcome.DONE,
    JobState.ERROR: AttemptOutcome.ERROR,
    JobState.CANCELLED: AttemptOutcome.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job: a row of `job_attempts`. `outcome` is None while it runs."""

    job_id: int
    attempt: int
    node: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    error_message: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Attempt:
        outcome = row["outcome"]
        return cls(
            job_id=row["job_id"],
            attempt=row["attempt"],
            node=row["node"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            outcome=AttemptOutcome(outcome) if outcome else None,
            error_message=row["error_message"],
        )


@dataclass
class PruneResult:
    """What a retention run deleted, per state; `skipped` when another node held the lock."""

    deleted: dict[JobState, int] = field(default_factory=dict)
    skipped: bool = False
    # The retention the run applied: final state -> how long its jobs are kept.
    retention: Mapping[JobState, timedelta] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())
