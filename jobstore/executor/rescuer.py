"""The rescuer: any node requeues (or ends) running jobs whose lease expired, because the
node that held them is gone. Non-retryable jobs and jobs out of attempts end `error`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from jobstore.domain.clock import Clock
from jobstore.metrics import Metrics
from jobstore.store import Database, RescueResult

log = logging.getLogger(__name__)


class Rescuer:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        on_requeued: Callable[[], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.store = db.jobs
        self.clock = clock
        self.metrics = metrics
        self._on_requeued = on_requeued

    async def run_once(self) -> RescueResult:
        async with self.db.transaction() as conn:
            result = await self.store.job_rescue_expired(conn, now=self.clock.now())
        if result.total:
            log.warning(
                "rescued expired jobs: requeued %s, ended %s", result.requeued, result.ended
            )
        if self.metrics is not None:
            for endpoint, count in result.endpoints.items():
                self.metrics.attempts_lost(endpoint, count)
        if result.requeued:
            self._on_requeued()
        return result
