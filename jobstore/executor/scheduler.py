"""The scheduler: moves `scheduled` jobs to the queue when their run_at comes.

Any node does it, for every endpoint. It sleeps until the earliest run_at it knows of, or the
poll interval, whichever is sooner, or until woken (a job was created, maybe scheduled sooner):
a due job starts within a poll interval on an idle cluster without a busy poll, and at once on
the node that created it. "Due" is judged on the database's clock (the node's Clock is set to
it; see store/clock.py), so nodes whose own clocks are skewed agree.

    run_once   read the earliest run_at; if it has come, promote due jobs in one transaction
               (and NOTIFY other nodes); returns how many jobs moved
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from jobstore.domain.clock import Clock
from jobstore.domain.loops import wait_set
from jobstore.store import Database

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        on_promoted: Callable[[], None],
        max_wait_seconds: float,
    ) -> None:
        self.db = db
        self.store = db.jobs
        self.clock = clock
        self.max_wait_seconds = max_wait_seconds
        self._on_promoted = on_promoted
        self._wake = asyncio.Event()
        self.next_due: datetime | None = None  # the earliest run_at seen, None: none

    def wake(self) -> None:
        self._wake.set()

    def note(self, run_at: datetime) -> None:
        """A job due at `run_at` was created here: wake at that time if it is the earliest."""
        if self.next_due is None or run_at < self.next_due:
            self.next_due = run_at
            self._wake.set()

    async def run_once(self) -> int:
        async with self.db.reading() as conn:
            self.next_due = await self.store.job_next_due(conn)
        if self.next_due is None or self.next_due > self.clock.now():
            return 0
        async with self.db.transaction() as conn:
            moved = await self.store.job_promote_due(conn, now=self.clock.now())
            if moved:
                await self.store.job_notify_created(conn)
        if moved:
            log.debug("%d scheduled jobs are due", moved)
            self._on_promoted()
        async with self.db.reading() as conn:
            self.next_due = await self.store.job_next_due(conn)
        return moved

    async def run(self) -> None:
        """Promote due jobs until cancelled; failures are logged and retried next round."""
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("scheduler failed: %s", exc)
                self.next_due = None
            await wait_set(self._wake, self._seconds_to_wait())

    def _seconds_to_wait(self) -> float:
        if self.next_due is None:
            return self.max_wait_seconds
        until = (self.next_due - self.clock.now()).total_seconds()
        return min(self.max_wait_seconds, max(until, 0.0))
