"""`AsyncClient`: the asyncio client. It has the methods of `Client`, and each runs the flow of
_operations.py that Client's runs, awaiting the I/O instead of blocking on it."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
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


class AsyncClient:
    """Calls one node's REST API from asyncio. Use `async with`, or await aclose().

    The arguments are Client's; `transport` is an httpx.AsyncBaseTransport.
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._connection = ops.Connection.of(
            url, token=token, user=user, password=password, timeout=timeout, headers=headers
        )
        self._http = httpx.AsyncClient(**self._connection.client_options(), transport=transport)

    @property
    def url(self) -> str:
        return self._connection.url

    @property
    def timeout(self) -> float:
        return self._connection.timeout

    def __repr__(self) -> str:
        return f"AsyncClient({ops.safe_url(self.url)!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- jobs -------------------------------------------------------------------------------

    async def create(
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
        """Create a job; see Client.create."""
        return await self._run(
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

    async def get(self, job: Job | JobRef, *, wait: float | None = None) -> Job:
        """A job, by id, tag or Job; see Client.get."""
        return await self._run(ops.get(job, wait))

    # Client's signature; WaitTimeout carries the job as last seen, which asyncio.timeout
    # around the call could not.
    async def wait(self, job: Job | JobRef, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The job once it has finished; see Client.wait."""
        return await self._run(ops.wait(job, timeout))

    async def result(self, job: Job | JobRef) -> JobResult:
        """How a finished job ended; see Client.result."""
        return await self._run(ops.result(job))

    async def cancel(self, job: Job | JobRef) -> CancelResult:
        """Cancel a job; see Client.cancel."""
        return await self._run(ops.cancel(job))

    async def retry(self, job: Job | JobRef) -> Job:
        """Run a finished job again; see Client.retry."""
        return await self._run(ops.retry(job))

    async def attempts(self, job: Job | JobRef) -> list[Attempt]:
        """Every run of a job, first to last."""
        return await self._run(ops.attempts(job))

    async def retry_matching(self, **filters: Unpack[BulkFilters]) -> BulkResult:
        """Run again the finished jobs the filters match; see Client.retry_matching."""
        return await self._run(ops.bulk("retry", JobQuery.matching(filters)))

    async def cancel_matching(self, **filters: Unpack[BulkFilters]) -> BulkResult:
        """Cancel the unfinished jobs the filters match; see Client.cancel_matching."""
        return await self._run(ops.bulk("cancel", JobQuery.matching(filters)))

    async def list(self, **filters: Unpack[JobFilters]) -> JobPage:
        """One page of jobs, newest first; see Client.list."""
        query = JobQuery.of(filters)
        return await self._run(ops.list_jobs(query))

    async def iter_jobs(self, **filters: Unpack[JobFilters]) -> AsyncIterator[Job]:
        """Every job the filters match, newest first (`async for`); see Client.iter_jobs."""
        query: JobQuery | None = JobQuery.of(filters)
        while query is not None:
            page = await self._run(ops.list_jobs(query))
            for job in page.items:
                yield job
            query = query.following(page)

    # -- schedules --------------------------------------------------------------------------

    async def create_schedule(
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
        """Create a recurring schedule; see Client.create_schedule."""
        timing = ScheduleTiming(
            cron=cron,
            every_seconds=every_seconds,
            timezone=timezone,
            misfire=misfire,
            start_at=start_at,
            end_at=end_at,
            enabled=enabled,
        )
        return await self._run(
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

    async def list_schedules(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return await self._run(sched.list_schedules())

    async def get_schedule(self, name: str) -> Schedule:
        """A schedule by name; NotFound when there is none."""
        return await self._run(sched.get_schedule(name))

    async def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> Schedule:
        """Change a schedule's fields given; see Client.update_schedule."""
        return await self._run(sched.update_schedule(name, changes))

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule's fires until it is resumed."""
        return await self._run(sched.set_enabled(name, False))

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire a paused schedule again; see Client.resume_schedule."""
        return await self._run(sched.set_enabled(name, True))

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay."""
        await self._run(sched.delete_schedule(name))

    async def fire_schedule(self, name: str) -> int:
        """Create the schedule's job now (paused or not); the job's id."""
        return await self._run(sched.fire_schedule(name))

    # -- concurrency limits -----------------------------------------------------------------

    async def list_limits(self) -> builtins.list[Limit]:
        """Every concurrency key with a named limit or with queued or running jobs, by key."""
        return await self._run(lim.list_limits())

    async def get_limit(self, key: str) -> Limit:
        """One concurrency key; NotFound when it has no named limit and no queued or running
        jobs."""
        return await self._run(lim.get_limit(key))

    async def set_limit(self, key: str, max_running: int) -> Limit:
        """Set (or change) the named limit of `key`: at most `max_running` of its jobs run at
        once, on all nodes (0 holds them). Forbidden unless an admin (with authentication)."""
        return await self._run(lim.set_limit(key, max_running))

    async def delete_limit(self, key: str) -> None:
        """Remove the named limit of `key` (it falls back to its endpoints' limit, or none);
        NotFound when it has none."""
        await self._run(lim.delete_limit(key))

    # -- the node ---------------------------------------------------------------------------

    async def stats(self) -> Stats:
        """Jobs per state."""
        return await self._run(ops.stats())

    async def endpoints(self) -> EndpointList:
        """The endpoints this node can run jobs for, by name, and how other names run."""
        return await self._run(ops.endpoints())

    async def prune(self, retention: Mapping[str, str] | None = None) -> PruneResult:
        """Delete finished jobs past their retention; see Client.prune."""
        return await self._run(ops.prune(retention))

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._send(request))
        except StopIteration as done:
            value: T = done.value
            return value
        finally:
            flow.close()

    async def _send(self, request: ops.Request) -> httpx.Response:
        try:
            response = await self._http.request(**self._connection.request_options(request))
        except httpx.TransportError as exc:
            raise self._connection.unreachable(exc) from exc
        return ops.checked(response)
