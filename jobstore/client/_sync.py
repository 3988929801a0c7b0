"""`Client`: the blocking client. Every method runs one flow of _operations.py."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Unpack

import httpx

from jobstore.client import _limits as lim
from jobstore.client import _operations as ops
from jobstore.client import _schedules as sched
from jobstore.client._operations import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    BulkFilters,
    Flow,
    JobFilters,
    JobOptions,
    JobQuery,
    JobRef,
    RunOptions,
    T,
)
from jobstore.client._schedules import ScheduleChanges, ScheduleTiming
from jobstore.client.models import (
    Attempt,
    BulkResult,
    CancelResult,
    EndpointList,
    Job,
    JobPage,
    JobResult,
    Limit,
    Misfire,
    PruneResult,
    Schedule,
    Stats,
)


class Client:
    """Calls one node's REST API. Use it as a context manager, or call close().

    Sign in with `token` (sent as a Bearer token) or with `user` and `password` (HTTP Basic).
    `timeout` bounds each request; a long poll gets its wait on top. `transport` replaces
    httpx's, e.g. to mount an app in tests.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._connection = ops.Connection.of(
            url, token=token, user=user, password=password, timeout=timeout, headers=headers
        )
        self._http = httpx.Client(**self._connection.client_options(), transport=transport)

    @property
    def url(self) -> str:
        return self._connection.url

    @property
    def timeout(self) -> float:
        return self._connection.timeout

    def __repr__(self) -> str:
        return f"Client({ops.safe_url(self.url)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------

    def create(
        self,
        endpoint: str,
        payload: Any = None,
        *,
        payload_bytes: bytes | None = None,
        payload_base64: str | None = None,
        encoding: str | None = None,
        tag: str | None = None,
        idempotency_key: str | None = None,
        remove_on_complete: bool = False,
        **options: Unpack[JobOptions],
    ) -> Job:
        """Create a job (its summary; `new` is False when the same tag and request had made
        it before). `payload` is any JSON value; None sends none. `options` are the engine's
        (JobOptions: run_at or delay_seconds, priority, retries, timeout); only those given
        are sent."""
        return self._run(
            ops.create(
                endpoint,
                payload,
                payload_bytes=payload_bytes,
                payload_base64=payload_base64,
                encoding=encoding,
                tag=tag,
                idempotency_key=idempotency_key,
                remove_on_complete=remove_on_complete,
                options=options,
            )
        )

    def get(self, job: Job | JobRef, *, wait: float | None = None) -> Job:
        """A job, by id, tag or Job; `wait` (at most 60 s) answers as soon as it finishes."""
        return self._run(ops.get(job, wait))

    def wait(self, job: Job | JobRef, timeout: float | None = None) -> Job:
        """The job once it has finished; WaitTimeout after `timeout` seconds (None: never)."""
        return self._run(ops.wait(job, timeout))

    def result(self, job: Job | JobRef) -> JobResult:
        """How a finished job ended; Conflict while it is queued or running."""
        return self._run(ops.result(job))

    def cancel(self, job: Job | JobRef) -> CancelResult:
        """Cancel a queued job, or ask a running one to stop; Conflict if it has finished."""
        return self._run(ops.cancel(job))

    def retry(self, job: Job | JobRef) -> Job:
        """Run a finished `error` or `cancelled` job again (the job, queued); Conflict
        (job-not-retryable) for a job in any other state."""
        return self._run(ops.retry(job))

    def attempts(self, job: Job | JobRef) -> list[Attempt]:
        """Every run of a job, first to last."""
        return self._run(ops.attempts(job))

    def retry_matching(self, **filters: Unpack[BulkFilters]) -> BulkResult:
        """Run again every finished `error` or `cancelled` job the filters match (at least
        one filter); `more` says the node stopped at its limit: call again."""
        return self._run(ops.bulk("retry", JobQuery.matching(filters)))

    def cancel_matching(self, **filters: Unpack[BulkFilters]) -> BulkResult:
        """Cancel every unfinished job the filters match (at least one filter); `more` says
        the node stopped at its limit: call again."""
        return self._run(ops.bulk("cancel", JobQuery.matching(filters)))

    def list(self, **filters: Unpack[JobFilters]) -> JobPage:
        """One page of jobs, newest first (`limit` 1-500, default 50); filters combine."""
        query = JobQuery.of(filters)
        return self._run(ops.list_jobs(query))

    def iter_jobs(self, **filters: Unpack[JobFilters]) -> Iterator[Job]:
        """Every job the filters match, newest first, a page of `limit` at a time."""
        query: JobQuery | None = JobQuery.of(filters)
        while query is not None:
            page = self._run(ops.list_jobs(query))
            yield from page.items
            query = query.following(page)

    # -- schedules --------------------------------------------------------------------------

    def create_schedule(
        self,
        name: str,
        endpoint: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every_seconds: float | None = None,
        timezone: str | None = None,
        misfire: Misfire | None = None,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
        enabled: bool = True,
        payload_bytes: bytes | None = None,
        payload_base64: str | None = None,
        encoding: str | None = None,
        remove_on_complete: bool = False,
        **options: Unpack[RunOptions],
    ) -> Schedule:
        """Create a recurring schedule: each fire creates a job of `endpoint` with `payload`
        (as `create` takes them) and the engine's `options` (RunOptions); it fires on `cron`
        in `timezone`, or every `every_seconds` (give one), from `start_at` to `end_at`.
        Conflict (schedule-exists) when the name is taken."""
        timing = ScheduleTiming(
            cron=cron,
            every_seconds=every_seconds,
            timezone=timezone,
            misfire=misfire,
            start_at=start_at,
            end_at=end_at,
            enabled=enabled,
        )
        return self._run(
            sched.create_schedule(
                name,
                endpoint,
                payload,
                payload_bytes=payload_bytes,
                payload_base64=payload_base64,
                encoding=encoding,
                remove_on_complete=remove_on_complete,
                timing=timing,
                options=options,
            )
        )

    def list_schedules(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return self._run(sched.list_schedules())

    def get_schedule(self, name: str) -> Schedule:
        """A schedule by name; NotFound when there is none."""
        return self._run(sched.get_schedule(name))

    def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> Schedule:
        """Change the fields given (None: back to the default) and keep the others. Giving
        `cron` drops `every_seconds` and the other way round; a new timing, or enabled=True,
        makes the next fire the first fire time from now."""
        return self._run(sched.update_schedule(name, changes))

    def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule's fires until it is resumed."""
        return self._run(sched.set_enabled(name, False))

    def resume_schedule(self, name: str) -> Schedule:
        """Fire again, from the first fire time from now (the missed ones are not made up)."""
        return self._run(sched.set_enabled(name, True))

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay."""
        self._run(sched.delete_schedule(name))

    def fire_schedule(self, name: str) -> int:
        """Create the schedule's job now (paused or not); the job's id."""
        return self._run(sched.fire_schedule(name))

    # -- concurrency limits -----------------------------------------------------------------

    def list_limits(self) -> builtins.list[Limit]:
        """Every concurrency key with a named limit or with queued or running jobs, by key."""
        return self._run(lim.list_limits())

    def get_limit(self, key: str) -> Limit:
        """One concurrency key; NotFound when it has no named limit and no queued or running
        jobs."""
        return self._run(lim.get_limit(key))

    def set_limit(self, key: str, max_running: int) -> Limit:
        """Set (or change) the named limit of `key`: at most `max_running` of its jobs run at
        once, on all nodes (0 holds them). Forbidden unless an admin (with authentication)."""
        return self._run(lim.set_limit(key, max_running))

    def delete_limit(self, key: str) -> None:
        """Remove the named limit of `key` (it falls back to its endpoints' limit, or none);
        NotFound when it has none."""
        self._run(lim.delete_limit(key))

    # -- the node ---------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Jobs per state."""
        return self._run(ops.stats())

    def endpoints(self) -> EndpointList:
        """The endpoints this node can run jobs for, by name, and how other names run."""
        return self._run(ops.endpoints())

    def prune(self, retention: Mapping[str, str] | None = None) -> PruneResult:
        """Delete finished jobs older than `retention` per state (default: the node's own)."""
        return self._run(ops.prune(retention))

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send(request))
        except StopIteration as done:
            value: T = done.value
            return value
        finally:
            flow.close()

    def _send(self, request: ops.Request) -> httpx.Response:
        try:
            response = self._http.request(**self._connection.request_options(request))
        except httpx.TransportError as exc:
            raise self._connection.unreachable(exc) from exc
        return ops.checked(response)
