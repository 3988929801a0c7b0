"""Keeping the jobs this node runs: lease renewal, progress, cancel requests.

Two services of the executor, each with a `run_once` the executor calls on its own interval
(and tests call directly, so no test sleeps to wait for a loop):

    LeaseKeeper   renew every lease this node holds in one UPDATE; an attempt whose job was
                  not renewed was lost (rescued by another node) and is dropped
    ProgressSync  write progress reported since the last run; act on cancel requests made on
                  any node; record as cancelled a handler that ignored its cancel too long
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobstore.domain.clock import Clock
from jobstore.domain.models import Outcome
from jobstore.executor.running import Run, RunningJobs, stopped_outcome
from jobstore.store import Database

log = logging.getLogger(__name__)

Finish = Callable[[Run, Outcome], Awaitable[None]]


class LeaseKeeper:
    def __init__(
        self,
        db: Database,
        running: RunningJobs,
        clock: Clock,
        *,
        node_id: str,
        lease_seconds: float,
    ) -> None:
        self.db = db
        self.store = db.jobs
        self.running = running
        self.clock = clock
        self.node_id = node_id
        self.lease = timedelta(seconds=lease_seconds)

    async def run_once(self) -> list[int]:
        """Renew this node's leases in one UPDATE; returns the ids of jobs found lost."""
        # Judge only the attempts we asked about: jobs claimed while the UPDATE ran are not
        # in its answer, and jobs that finished meanwhile are no longer running.
        sent = {run.claimed.job_id: run for run in self.running if not run.lost}
        if not sent:
            return []
        now = self.clock.now()
        async with self.db.transaction() as conn:
            held = await self.store.job_lease_renew(
                conn,
                node=self.node_id,
                held=[(i, r.claimed.attempt) for i, r in sent.items()],
                now=now,
                lease_until=now + self.lease,
            )
        held_ids = {h.job_id for h in held}
        for job_id in held_ids:
            sent[job_id].lease_until = now + self.lease
        lost = []
        for job_id, run in sent.items():
            if job_id in held_ids or run.lost or run.finishing:
                continue
            if run.task is None or run.task.done() or self.running.get(job_id) is not run:
                continue
            lost.append(job_id)
            self.running.drop(run, "its lease was lost and another attempt owns the job")
        for h in held:
            held_run = self.running.get(h.job_id)
            if h.cancel_requested and held_run is not None:
                self.running.begin_cancel(held_run)
        return lost


@dataclass
class TickResult:
    progress_written: int = 0
    cancels_seen: list[int] = field(default_factory=list)
    forced_cancelled: list[int] = field(default_factory=list)


class ProgressSync:
    def __init__(self, db: Database, running: RunningJobs, clock: Clock, *, finish: Finish) -> None:
        self.db = db
        self.store = db.jobs
        self.running = running
        self.clock = clock
        self._finish = finish

    async def run_once(self) -> TickResult:
        """Write progress reported since the last run; act on cancel requests."""
        result = TickResult()
        if not len(self.running):
            return result
        now = self.clock.now()
        reported = [
            (run.claimed.job_id, run.claimed.attempt, p)
            for run in self.running
            if (p := run.ctx.take_progress()) is not None
        ]
        # A write only when some handler reported progress; cancel requests made through
        # other nodes (or processes) are read, which takes no write lock on SQLite.
        if reported:
            async with self.db.transaction() as conn:
                written = await self.store.job_progress_many(conn, reported, now)
            result.progress_written = len(written)
        async with self.db.reading() as conn:
            flagged = await self.store.job_cancel_flags(conn, self.running.ids())
        for job_id in flagged:
            if (run := self.running.get(job_id)) is not None and run.cancel_deadline is None:
                result.cancels_seen.append(job_id)
                self.running.begin_cancel(run)
        result.forced_cancelled = await self._force_overdue_cancels(now)
        return result

    async def _force_overdue_cancels(self, now: datetime) -> list[int]:
        """A handler that ignores its cancel past the grace period is recorded cancelled."""
        overdue = [
            run
            for run in self.running
            if run.cancel_deadline is not None and now >= run.cancel_deadline and not run.lost
        ]
        for run in overdue:
            # Whatever it returns later is not recorded. It stays running until its task
            # ends: a blocked handler still holds a thread of the pool.
            run.lost = True
            await self._finish(run, stopped_outcome(run))
            log.warning("job %d ignored its stop for the grace period", run.claimed.job_id)
        return [r.claimed.job_id for r in overdue]
