"""The one exception tree. Every error a client can cause is a ClientError.

JobstoreError
├── ClientError                 the caller's fault; facades answer it in their dialect
│   ├── BadRequest              malformed or invalid input
│   │   ├── BadOption           a job option (priority, run_at, ...) out of its range
│   │   └── DecodeError         a body or payload that its encoding cannot decode
│   ├── UnknownEndpoint         create names an endpoint nobody registered
│   ├── TagConflict             the tag is taken by a different job
│   ├── JobNotFound             no job with that id or tag
│   ├── JobRemoved              the job finished and was removed (remove_job_on_complete)
│   ├── JobNotRetryable         retry of a job that is not a finished error or cancel
│   ├── TokenRefused            a callback's token is not the job's (stale: an older attempt's)
│   ├── DefinitionNotFound      no named job definition with that name
│   ├── DefinitionExists        a definition of that name exists already
│   └── DefinitionBusy          the definition's last submission has not finished
├── JobFailed                   raised by a handler: the attempt ends `error` (retry=False: the job)
├── StoreUnavailable            the database is out of reach; facades answer 503
├── CannotListen                a node cannot bind its --host:--port
├── DatabaseUnusable            at start: the database is down, missing, refuses us or lacks
│                               jobstore's schema; one line naming it, the cause, what to do
└── ConfigError                 bad settings or endpoint modules, found at start
"""

from __future__ import annotations

from datetime import datetime


class JobstoreError(Exception):
    """Base of every error jobstore raises on purpose."""


class ClientError(JobstoreError):
    """An error the client caused; its message is safe to show to that client."""


class BadRequest(ClientError):
    pass


class BadOption(BadRequest):
    """A job option (priority, run_at, ...) has a value it cannot take; `option` names it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"option {option!r} {message}")
        self.option = option
        self.reason = message


class JobNotRetryable(ClientError):
    """Only a finished `error` or `cancelled` job can be run again."""

    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(
            f"job {job_id} is {status}; only a job that ended error or cancelled can be retried"
        )
        self.job_id = job_id
        self.status = status


class DecodeError(BadRequest):
    pass


class TokenRefused(ClientError):
    """A callback's X-Jobstore-Job-Token does not let it complete the job now: `stale` when it
    was handed to an attempt that no longer holds the job (it ended, or the job runs again),
    else when no attempt at this job was handed it."""

    def __init__(self, job_id: int, *, stale: bool) -> None:
        if stale:
            message = (
                f"the token's attempt no longer holds job {job_id}: the job ended or runs again "
                "(a newer attempt has its own token)"
            )
        else:
            message = f"the token is not one job {job_id} handed out"
        super().__init__(message)
        self.job_id = job_id
        self.stale = stale


class UnknownEndpoint(ClientError):
    def __init__(self, endpoint: str, known: list[str] | None = None) -> None:
        if not endpoint.strip():
            hint = f": name one of {', '.join(known)}" if known else " (this service has none)"
            super().__init__(f"no endpoint given{hint}")
        else:
            hint = f"; this service has {', '.join(known)}" if known else ""
            super().__init__(f"unknown endpoint {endpoint!r}{hint}")
        self.endpoint = endpoint


class TagConflict(ClientError):
    """`differs` says what differs from the job holding the tag, e.g. "payload"."""

    def __init__(self, tag: str, job_id: int | None, differs: str | None = None) -> None:
        if job_id is None:
            super().__init__(f"job_tag {tag!r} is already in use; choose another tag")
        else:
            what = differs or "endpoint, request_encoding or payload"
            super().__init__(
                f"job_tag {tag!r} is already used by job {job_id} with a different {what}"
            )
        self.tag = tag
        self.job_id = job_id
        self.differs = differs


class JobNotFound(ClientError):
    def __init__(self, *, job_id: int | None = None, tag: str | None = None) -> None:
        what = f"job_tag {tag!r}" if tag is not None else f"job_id {job_id}"
        super().__init__(f"Job not found: no job with {what}")
        self.job_id = job_id
        self.tag = tag


class JobRemoved(ClientError):
    def __init__(self, job_id: int, tag: str, status: str, finished_at: datetime) -> None:
        super().__init__(
            f"Job {job_id} (tag {tag!r}) finished ({status.upper()}) at "
            f"{finished_at.isoformat()} and was removed because "
            "remove_job_on_complete was set"
        )
        self.job_id = job_id
        self.tag = tag
        self.status = status
        self.finished_at = finished_at


class DefinitionNotFound(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no job definition named {name!r}")
        self.name = name


class DefinitionExists(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a job definition named {name!r} exists already")
        self.name = name


class DefinitionBusy(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f"job definition {name!r} is already running")
        self.name = name


class ScheduleNotFound(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class ScheduleExists(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} exists already")
        self.name = name


class ScheduleManaged(ClientError):
    """A schedule another facade keeps (a CDM definition's): changed through it, not directly."""

    def __init__(self, name: str, source: str) -> None:
        super().__init__(
            f"schedule {name!r} belongs to a {source.upper()} definition: change or delete the "
            "definition instead (pause, resume and fire now work here)"
        )
        self.name = name
        self.source = source


class LimitNotFound(ClientError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no concurrency limit is set for key {key!r}")
        self.key = key


class JobFailed(JobstoreError):
    """Raise from a handler to end the attempt `error` with this message.

    A job whose `retry_errors` is on runs again while it has attempts left, unless the handler
    says `retry=False`: then the job ends `error` at once. `retry_after` (seconds) replaces the
    backoff before that next attempt (an upstream's Retry-After, say), up to the node's
    --max-backoff-seconds.
    """

    def __init__(
        self, message: str = "", *, retry: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class CannotListen(JobstoreError):
    """--host:--port cannot be bound: in use, not an address of this machine, no permission."""


class StoreUnavailable(JobstoreError):
    """The database did not answer; the operation did not happen (or its outcome is unknown)."""


class DatabaseUnusable(JobstoreError):
    """At start, the database could not be used: the server is down or unknown, the database
    does not exist, the login or a statement was refused, or the schema is missing or too old.

    The message is one line for the operator, `problem; hint`: the problem names the database
    (its URL, never its password) and the cause, the hint says what to do. `retryable` says
    whether waiting may help (a server that is starting, a database about to be created), as
    opposed to a wrong password or a missing schema.
    """

    def __init__(self, problem: str, hint: str, *, retryable: bool = False) -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem = problem
        self.hint = hint
        self.retryable = retryable


class ConfigError(JobstoreError):
    pass
