"""Retention: delete finished jobs older than their state's retention, in bounded batches.

One node prunes at a time (a PostgreSQL advisory lock held per batch); each batch is its own
short transaction, so pruning a large backlog never holds locks for long. How many jobs a batch
deletes is the database's to say (`prune_batch_size`): on SQLite a batch holds the only write
lock, so its batches are small.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import timedelta

from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.loops import Loop
from jobstore.domain.models import JobState, PruneResult
from jobstore.executor.config import PrunerConfig
from jobstore.store import Database

log = logging.getLogger(__name__)

LOCK_NAME = "jobstore-pruner"


class Pruner:
    """The retention pass, every `interval_seconds`, and on demand through `run_once`."""

    def __init__(self, db: Database, config: PrunerConfig, *, clock: Clock | None = None) -> None:
        self.db = db
        self.store = db.jobs
        self.cdm = db.cdm
        self.config = config
        self.clock = clock or SystemClock()
        self._background = Loop("jobstore-pruner", self._loop)

    async def run_once(self, retention: Mapping[JobState, timedelta] | None = None) -> PruneResult:
        """Delete what is past its retention (the configured one, or `retention`)."""
        keep = self.config.retention if retention is None else retention
        result = PruneResult(retention=dict(keep))
        now = self.clock.now()
        size = self.config.batch_size or self.db.driver.prune_batch_size
        for state, period in keep.items():
            result.deleted[state] = 0
            for _ in range(math.ceil(self.config.max_per_run / size)):
                async with self.db.transaction() as conn:
                    if not await self.store.maintenance_lock(conn, LOCK_NAME):
                        result.skipped = True
                        return result
                    pruned = await self.store.job_prune_ids(
                        conn, state, finished_before=now - period, limit=size
                    )
                    # CDM submissions of the pruned jobs go in the same transaction.
                    await self.cdm.submission_prune(conn, pruned)
                n = len(pruned)
                result.deleted[state] += n
                if n < size:
                    break
        if result.total:
            log.info(
                "pruned %s", ", ".join(f"{n} {s.value}" for s, n in result.deleted.items() if n)
            )
        return result

    @property
    def retention(self) -> Mapping[JobState, timedelta]:
        """What this node keeps, per final state; states kept forever are left out."""
        return self.config.retention

    async def start(self) -> None:
        """Start the periodic pass (only when some state has a retention)."""
        if self.config.enabled:
            self._background.start()

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the database may be away for a while: try again later
                log.warning("pruning failed: %s", exc)
            await asyncio.sleep(self.config.interval_seconds)
