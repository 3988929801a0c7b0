"""Completing a running attempt from outside its run: the upstream of a callback endpoint.

A callback endpoint's attempt hands its upstream a token (JobContext.callback_token; only its
hash is kept, on the attempt's row) and waits. The upstream reports progress and, in the end,
the result or an error, through the API (POST /api/v1/jobs/{id}/progress and /complete),
presenting the token. Only the token of the attempt that holds the job now is taken: an older
attempt's is refused as stale, so a node that lost the job, or an upstream answering a call
from before a restart, never overwrites a newer attempt.

A completion is written like the executor's own outcome, fenced by (job id, attempt): `done`
with the result, or `error`, which runs again under the job's retry rules. The node waiting for
it then ends its run without writing (told at once on this node, by its lease keeper on others).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobstore.core.jobs import JobService
from jobstore.domain.errors import JobNotFound, TokenRefused
from jobstore.domain.models import FINAL_STATES, Job, JobState, Outcome, Payload
from jobstore.domain.retries import with_retry
from jobstore.endpoints.context import token_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """How an upstream says the job ended: a `result` (done), or an `error` message, which the
    engine may retry unless `retry` is False. `status_map` entries join the job's."""

    result: Payload | None = None
    error: str | None = None
    retry: bool = True
    status_map: dict[str, str] = field(default_factory=dict)

    def outcome(self) -> Outcome:
        if self.error is None:
            return Outcome(JobState.DONE, self.result, dict(self.status_map))
        return Outcome(JobState.ERROR, status_map={**self.status_map, "error_message": self.error})


class CallbackService:
    def __init__(self, jobs: JobService, *, max_backoff_seconds: float) -> None:
        self.jobs = jobs
        self.db = jobs.db
        self.store = jobs.db.jobs
        self.max_backoff_seconds = max_backoff_seconds

    async def complete(self, job_id: int, token: str, completion: Completion) -> JobState:
        """End the token's attempt; the job's new state (`queued` or `scheduled` when it runs
        again). TokenRefused, or JobNotFound, when the token cannot."""
        now = self.jobs.clock.now()
        async with self.db.transaction() as conn:
            job = await self._holder(conn, job_id, token)
            outcome = with_retry(
                job,
                completion.outcome(),
                clock=self.jobs.clock,
                cap=self.max_backoff_seconds,
                retry=completion.retry,
            )
            [state] = await self.store.job_end_attempts(conn, [(job_id, job.attempt, outcome)], now)
            if state is None:  # it ended meanwhile (timed out, say)
                raise TokenRefused(job_id, stale=True)
            if state is JobState.QUEUED:
                await self.store.job_notify_created(conn)
        self._announce(job, outcome, state, now)
        return state

    async def progress(self, job_id: int, token: str, percent: int) -> None:
        """Record the token's attempt's progress (0-100)."""
        async with self.db.transaction() as conn:
            job = await self._holder(conn, job_id, token)
            await self.store.job_progress(
                conn,
                job_id=job_id,
                attempt=job.attempt,
                progress=percent,
                now=self.jobs.clock.now(),
            )

    async def _holder(self, conn: Any, job_id: int, token: str) -> Job:
        """The job, if the token is its running attempt's."""
        attempt = await self.store.attempt_of_token(
            conn, job_id=job_id, token_hash=token_hash(token)
        )
        job = await self.store.job_get(conn, job_id)
        if job is None:
            raise JobNotFound(job_id=job_id)
        if attempt is None:
            raise TokenRefused(job_id, stale=False)
        if job.status is not JobState.RUNNING or job.attempt != attempt:
            raise TokenRefused(job_id, stale=True)
        return job

    def _announce(self, job: Job, outcome: Outcome, state: JobState, now: datetime) -> None:
        events = self.jobs.events
        events.settled(job.job_id, job.attempt)
        if (metrics := self.jobs.metrics) is not None:
            # Counted as the executor counts its own outcomes: the run that waited for this
            # completion ends without recording (or counting) anything.
            metrics.attempt_ended(job.endpoint, outcome.attempt_outcome, state)
            if state in FINAL_STATES:
                began = job.started_at or now
                metrics.job_finished(job.endpoint, state, (now - began).total_seconds())
        if state in FINAL_STATES:
            events.finished(job.job_id, state)
        elif state is JobState.QUEUED:
            events.created(job.endpoint)
        elif outcome.retry_at is not None:
            events.scheduled(outcome.retry_at)
        log.info(
            "job %d attempt %d completed through the API: %s",
            job.job_id,
            job.attempt,
            state.value,
            extra={"job_id": job.job_id, "endpoint": job.endpoint, "attempt": job.attempt},
        )
