"""The attempts one node is running, and the two ways an attempt stops early.

The runner adds an attempt when it claims a job and forgets it when its task ends; the lease
keeper and the progress sync read the same table. An attempt is *cancelled* when its job's
cancel was requested (the handler is told, and after a grace period the job is recorded
cancelled anyway), and *dropped* when its job no longer belongs to it (nothing it returns is
recorded).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobstore.domain.clock import Clock
from jobstore.domain.models import AttemptOutcome, Claimed, JobState, Outcome
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import EndpointRegistry

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One attempt at one job, on this node."""

    claimed: Claimed
    ctx: JobContext
    # Until when the job is ours for sure: the lease of the claim, or of its last renewal.
    lease_until: datetime
    task: asyncio.Task[None] | None = None
    cancel_deadline: datetime | None = None
    lost: bool = False
    finishing: bool = False  # the outcome is being written; cancelling now would lose it
    timed_out: bool = False  # ran past its job's timeout_seconds: stopped like a cancel
    no_retry: bool = False  # the handler raised JobFailed(..., retry=False)
    retry_after: float | None = None  # the handler raised JobFailed(..., retry_after=s)
    timer: asyncio.TimerHandle | None = None  # fires the timeout
    started: float = field(default_factory=time.monotonic)


class RunningJobs:
    """This node's running attempts, by job id."""

    def __init__(
        self, registry: EndpointRegistry, clock: Clock, *, cancel_grace_seconds: float
    ) -> None:
        self._runs: dict[int, Run] = {}
        self._registry = registry
        self._clock = clock
        self._grace = timedelta(seconds=cancel_grace_seconds)

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._runs

    def __iter__(self) -> Iterator[Run]:
        return iter(list(self._runs.values()))

    def get(self, job_id: int) -> Run | None:
        return self._runs.get(job_id)

    def ids(self) -> list[int]:
        return sorted(self._runs)

    def add(self, run: Run) -> None:
        self._runs[run.claimed.job_id] = run

    def forget(self, run: Run) -> None:
        """Remove `run`, unless a newer attempt at the same job took its place."""
        if run.timer is not None:
            run.timer.cancel()
        if self._runs.get(run.claimed.job_id) is run:
            del self._runs[run.claimed.job_id]

    def clear(self) -> None:
        self._runs.clear()

    def begin_cancel(self, run: Run, *, requested: bool = True) -> None:
        """Tell the handler its job is cancelled (`requested`: on a cancel request, not a
        timeout); an async handler's task is cancelled too."""
        if run.cancel_deadline is not None or run.finishing:
            return
        run.ctx.cancel(requested=requested, timed_out=run.timed_out)
        run.cancel_deadline = self._clock.now() + self._grace
        if run.task is not None and self._registry.get(run.claimed.endpoint).is_async:
            run.task.cancel()

    def time_out(self, run: Run) -> None:
        """The run took longer than its job's timeout: stop it as a cancel stops it; its
        attempt ends `timeout`."""
        if run.finishing or run.lost or run.timed_out:
            return
        run.timed_out = True
        log.warning(
            "job %d attempt %d timed out after %g s",
            run.claimed.job_id,
            run.claimed.attempt,
            run.claimed.timeout_seconds,
        )
        self.begin_cancel(run, requested=False)

    @staticmethod
    def drop(run: Run, why: str, *, settled: bool = False) -> None:
        """Stop a run whose job no longer belongs to it; nothing it returns is recorded.
        `settled`: the job was completed through the API (a callback), as it expected."""
        run.lost = True
        run.ctx.cancel(requested=False)
        if run.task is not None and not run.finishing:
            run.task.cancel()
        if settled or run.ctx.awaiting_callback:
            if not settled:  # most likely completed through the API on another node
                why = f"its job was completed through the API, or {why}"
            log.info("job %d attempt %d ended: %s", run.claimed.job_id, run.claimed.attempt, why)
            return
        log.error("job %d attempt %d stopped: %s", run.claimed.job_id, run.claimed.attempt, why)


def cancelled_outcome(ctx: JobContext) -> Outcome:
    return Outcome(
        JobState.CANCELLED, status_map={**ctx.status_map, "error_message": "cancelled on request"}
    )


def stopped_outcome(run: Run) -> Outcome:
    """How a run stopped from outside ends: `timeout` when its time ran out, else cancelled."""
    if not run.timed_out:
        return cancelled_outcome(run.ctx)
    message = f"timed out after {run.claimed.timeout_seconds:g} s"
    return Outcome(
        JobState.ERROR,
        status_map={**run.ctx.status_map, "error_message": message},
        attempt=AttemptOutcome.TIMEOUT,
    )
