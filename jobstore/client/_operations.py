"""Every operation of the client once, without I/O: the requests it sends, how it reads them.

An operation is a flow, a generator in the manner of httpx's auth flows: it yields each
`Request` it needs and is sent back the `httpx.Response`, always a success (the driver raises
the error for any other answer); what it returns is the result of the call. `Client` drives the
flows with blocking I/O and `AsyncClient` with asyncio: both send the same requests and read
the answers the same way, and each of their methods is one line.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from jobstore import __version__
from jobstore.client.errors import Unreachable, WaitTimeout, api_error, unexpected
from jobstore.client.models import (
    Attempt,
    BulkAction,
    BulkResult,
    CancelResult,
    EndpointList,
    Job,
    JobPage,
    JobResult,
    PruneResult,
    Stats,
)

T = TypeVar("T")

API = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:9191"
DEFAULT_TIMEOUT = 30.0
MAX_PAGE = 500
MAX_WAIT_SECONDS = 60.0  # the longest ?wait= a node accepts
# How long a long poll may take beyond its ?wait=, before the read counts as timed out.
POLL_SLACK_SECONDS = 10.0

JobRef = int | str  # an id, or a tag


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the node; `path` is under /api/v1."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    headers: Mapping[str, str] | None = None
    hold: float = 0.0  # seconds the node may hold the answer back (a long poll)


Flow = Generator[Request, httpx.Response, T]


# -- the connection: shared by both clients -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the node is, how to sign in to it and how long to wait for it."""

    url: str
    headers: dict[str, str]
    auth: httpx.Auth | None
    timeout: float

    @classmethod
    def of(
        cls,
        url: str,
        *,
        token: str | None,
        user: str | None,
        password: str | None,
        timeout: float,
        headers: Mapping[str, str] | None,
    ) -> Connection:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the url must start with http:// or https://, got {safe_url(url)}")
        if token and user is not None:
            raise ValueError("give a token or a user, not both")
        sent = {"User-Agent": f"jobstore-client/{__version__}", "Accept": "application/json"}
        sent.update(headers or {})
        auth: httpx.Auth | None = None
        if token:
            sent["Authorization"] = f"Bearer {token}"
        elif user is not None:
            auth = httpx.BasicAuth(user, password or "")
        return cls(url.rstrip("/"), sent, auth, timeout)

    def client_options(self) -> dict[str, Any]:
        """For httpx.Client or httpx.AsyncClient."""
        return {
            "base_url": self.url + API,
            "headers": self.headers,
            "auth": self.auth,
            "timeout": self.timeout,
        }

    def request_options(self, request: Request) -> dict[str, Any]:
        """For the request method of httpx.Client or httpx.AsyncClient."""
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if request.hold:
            timeout = self.timeout + request.hold + POLL_SLACK_SECONDS
        return {
            "method": request.method,
            "url": request.path,
            "params": request.params,
            "json": request.json,
            "headers": request.headers,
            "timeout": timeout,
        }

    def unreachable(self, exc: httpx.TransportError) -> Unreachable:
        if isinstance(exc, httpx.TimeoutException):
            return Unreachable(f"{safe_url(self.url)} did not answer in time")
        return Unreachable(f"cannot reach {safe_url(self.url)}: {exc}")


def checked(response: httpx.Response) -> httpx.Response:
    """The response if it is a success; else the ApiError (subclass) it stands for."""
    if response.is_success:
        return response
    raise api_error(response)


def safe_url(url: str) -> str:
    """The URL without any user:password@ part, fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


# -- jobs ---------------------------------------------------------------------------------------


class RunOptions(TypedDict, total=False):
    """How a job runs, all optional (for a job, and for each job of a schedule)."""

    priority: int  # -1000 to 1000; a higher priority starts first (default 0)
    max_attempts: int  # how many runs the job may have (>= 1)
    retry_errors: bool  # run a failed or timed-out attempt again while attempts are left
    backoff_seconds: float  # the wait before the first retry (>= 0), doubled for each next one
    timeout_seconds: float  # a run that takes longer fails as timed out (> 0)
    concurrency_key: str  # at most its limit of the jobs of one key run at once (1-128 chars)


class JobOptions(RunOptions, total=False):
    """The engine's options of a new job, all optional: `create` takes them as keywords and
    sends only those given; the endpoint's defaults, then the node's, fill in the rest."""

    run_at: datetime | str  # scheduled until then: a datetime with a time zone, or RFC 3339
    delay_seconds: float  # or: scheduled this long after the create (>= 0)


def create(
    endpoint: str,
    payload: Any,
    *,
    payload_bytes: bytes | None,
    payload_base64: str | None,
    encoding: str | None,
    tag: str | None,
    idempotency_key: str | None,
    remove_on_complete: bool,
    options: JobOptions,
) -> Flow[Job]:
    given = {"payload": payload, "payload_bytes": payload_bytes, "payload_base64": payload_base64}
    if len(named := [name for name, value in given.items() if value is not None]) > 1:
        raise ValueError(f"give one payload, not {' and '.join(named)}")
    body: dict[str, Any] = {"endpoint": endpoint, "remove_on_complete": remove_on_complete}
    body.update(_options_body(options))
    if payload is not None:
        body["payload"] = payload
    if payload_bytes is not None:
        payload_base64 = base64.b64encode(payload_bytes).decode("ascii")
    if payload_base64 is not None:
        body["payload_base64"] = payload_base64
    if encoding is not None:
        body["encoding"] = encoding
    if tag is not None:
        body["tag"] = tag
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
    response = yield Request("POST", "/jobs", json=body, headers=headers)
    new = response.status_code == 201
    return read(response, lambda doc: Job.from_json(doc, new=new))


def get(job: Job | JobRef, wait: float | None = None) -> Flow[Job]:
    params = (("wait", f"{wait:g}"),) if wait is not None else ()
    response = yield Request("GET", _job_path(job), params=params, hold=wait or 0.0)
    return read(response, Job.from_json)


def wait(job: Job | JobRef, timeout: float | None, poll: float = MAX_WAIT_SECONDS) -> Flow[Job]:
    """Long polls of up to `poll` seconds until the job has finished."""
    limit = math.inf if timeout is None else timeout
    deadline = time.monotonic() + limit
    while True:
        seen = yield from get(job, wait=min(poll, max(deadline - time.monotonic(), 0.0)))
        if seen.finished:
            return seen
        if time.monotonic() >= deadline:
            raise WaitTimeout(seen, limit)


def result(job: Job | JobRef) -> Flow[JobResult]:
    job_id = yield from _job_id(job)
    response = yield Request("GET", f"/jobs/{job_id}/result")
    return read(response, JobResult.from_json)


def cancel(job: Job | JobRef) -> Flow[CancelResult]:
    job_id = yield from _job_id(job)
    response = yield Request("POST", f"/jobs/{job_id}/cancel")
    return read(response, CancelResult.from_json)


def retry(job: Job | JobRef) -> Flow[Job]:
    job_id = yield from _job_id(job)
    response = yield Request("POST", f"/jobs/{job_id}/retry")
    return read(response, Job.from_json)


def attempts(job: Job | JobRef) -> Flow[list[Attempt]]:
    job_id = yield from _job_id(job)
    response = yield Request("GET", f"/jobs/{job_id}/attempts")
    return read(response, Attempt.list_from_json)


class BulkFilters(TypedDict, total=False):
    """What `retry_matching` and `cancel_matching` take: at least one; they combine."""

    # One state or several, of: scheduled, queued, running, done, error, cancelled (a listing);
    # error, cancelled (retry_matching); scheduled, queued, running (cancel_matching).
    status: str | Iterable[str]
    endpoint: str
    created_after: datetime  # with a time zone
    created_before: datetime


class JobFilters(BulkFilters, total=False):
    """What `list` and `iter_jobs` take, all optional; they combine."""

    tag: str
    limit: int  # jobs per page, 1-500 (default 50)
    before: int  # only jobs older than this job id


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The filters of a listing (and where its page starts), or of a bulk retry or cancel."""

    status: tuple[str, ...] = ()
    endpoint: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = None
    before: int | None = None

    @classmethod
    def of(cls, filters: JobFilters) -> JobQuery:
        """The query of a listing."""
        return cls._read(filters, JobFilters)

    @classmethod
    def matching(cls, filters: BulkFilters) -> JobQuery:
        """The filters of a bulk retry or cancel: at least one, or ValueError (a bulk action
        on every job is too easy to send by mistake)."""
        query = cls._read(filters, BulkFilters)
        if query == cls():
            raise ValueError(f"give at least one filter: {', '.join(BulkFilters.__annotations__)}")
        return query

    @classmethod
    def _read(cls, filters: Mapping[str, Any], allowed: type) -> JobQuery:
        check_names(filters, allowed)
        status = filters.get("status", ())
        after, before = filters.get("created_after"), filters.get("created_before")
        for name, when in (("created_after", after), ("created_before", before)):
            if when is not None:
                check_zone(name, when)
        return cls(
            (status,) if isinstance(status, str) else tuple(status),
            filters.get("endpoint"),
            filters.get("tag"),
            after,
            before,
            filters.get("limit"),
            filters.get("before"),
        )

    def params(self) -> tuple[tuple[str, str], ...]:
        given: list[tuple[str, str]] = []
        if self.status:
            given.append(("status", ",".join(self.status)))
        for name in ("endpoint", "tag", "limit", "before"):
            if (value := getattr(self, name)) is not None:
                given.append((name, str(value)))
        for name in ("created_after", "created_before"):
            if (when := getattr(self, name)) is not None:
                given.append((name, when.isoformat()))
        return tuple(given)

    def following(self, page: JobPage) -> JobQuery | None:
        """The query of the page after `page`; None when `page` was the last."""
        return None if page.next_before is None else replace(self, before=page.next_before)

    def body(self) -> dict[str, Any]:
        """The filters as the JSON body of POST /jobs/retry and /jobs/cancel."""
        body: dict[str, Any] = {}
        if self.status:
            body["status"] = list(self.status)
        if self.endpoint is not None:
            body["endpoint"] = self.endpoint
        for name in ("created_after", "created_before"):
            if (when := getattr(self, name)) is not None:
                body[name] = when.isoformat()
        return body


def list_jobs(query: JobQuery) -> Flow[JobPage]:
    response = yield Request("GET", "/jobs", params=query.params())
    return read(response, JobPage.from_json)


def bulk(action: BulkAction, query: JobQuery) -> Flow[BulkResult]:
    """Retry or cancel every job `query` matches (the node stops at its limit: see `more`)."""
    response = yield Request("POST", f"/jobs/{action}", json=query.body())
    return read(response, BulkResult.from_json)


# -- the node -----------------------------------------------------------------------------------


def stats() -> Flow[Stats]:
    response = yield Request("GET", "/stats")
    return read(response, Stats.from_json)


def endpoints() -> Flow[EndpointList]:
    response = yield Request("GET", "/endpoints")
    return read(response, EndpointList.from_json)


def prune(retention: Mapping[str, str] | None) -> Flow[PruneResult]:
    body = {"retention": dict(retention)} if retention else None
    response = yield Request("POST", "/prune", json=body)
    return read(response, PruneResult.from_json)


# -- checking arguments -------------------------------------------------------------------------


def check_names(given: Mapping[str, Any], allowed: type) -> None:
    """Keyword arguments unpacked from a TypedDict are not checked at run time: say it as
    Python would."""
    unknown = set(given) - set(allowed.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword argument {', '.join(sorted(unknown))}")


def check_zone(name: str, when: datetime) -> None:
    if when.utcoffset() is None:
        raise ValueError(f"{name} needs a time zone, e.g. datetime.now(UTC)")


def _options_body(options: JobOptions) -> dict[str, Any]:
    """The options given (not None), as the create body's fields."""
    check_names(options, JobOptions)
    given: dict[str, Any] = {name: value for name, value in options.items() if value is not None}
    if "run_at" in given and "delay_seconds" in given:
        raise ValueError("give run_at or delay_seconds, not both")
    if isinstance(run_at := given.get("run_at"), datetime):
        check_zone("run_at", run_at)
        given["run_at"] = run_at.isoformat()
    return given


# -- reading answers ----------------------------------------------------------------------------


def read(response: httpx.Response, parse: Callable[[dict[str, Any]], T]) -> T:
    """What a success answer's JSON object says, parsed; an ApiError if it is not one."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise unexpected(response, "did not return JSON")
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise unexpected(response, f"returned JSON this client cannot read ({exc!r})") from None


def _job_path(job: Job | JobRef) -> str:
    if isinstance(job, Job):
        return f"/jobs/{job.id}"
    if isinstance(job, int):
        return f"/jobs/{job}"
    return f"/jobs/tag/{quote(job, safe='')}"


def _job_id(job: Job | JobRef) -> Flow[int]:
    """The id of a job given by id, as a Job or by tag (the last asks the node)."""
    if isinstance(job, Job):
        return job.id
    if isinstance(job, int):
        return job
    found = yield from get(job)
    return found.id
