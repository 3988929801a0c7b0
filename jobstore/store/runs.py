"""The executor's SQL about jobs it runs: claim, leases, progress, finish, requeue and rescue.

Writes about a running job are fenced by `(job_id, attempt, status='running')`: a node that
lost its lease can never overwrite a newer attempt, so each job is completed at most once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.models import AttemptOutcome, Claimed, JobState, Outcome
from jobstore.store.driver import Driver
from jobstore.store.statements import (
    IS_RUNNING,
    IS_SCHEDULED,
    QUEUED,
    SCHEDULED,
    AttemptRow,
    FinishRow,
    cancel_map,
    claimed_from_row,
)
from jobstore.store.tables import job_attempts, job_tombstones, jobs

CANCEL_MESSAGE = cancel_map()["error_message"]
# Scheduled jobs moved to the queue per statement.
PROMOTE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RescueResult:
    """What a rescue pass did: jobs put back in the queue, and jobs ended for good."""

    requeued: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    endpoints: dict[str, int] = field(default_factory=dict)  # attempts closed, per endpoint

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.ended)


@dataclass(frozen=True, slots=True)
class LeaseState:
    job_id: int
    attempt: int
    cancel_requested: bool


class RunStore:
    """Job SQL of the executor, on the database `driver` speaks for."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    async def job_claim(
        self,
        conn: AsyncConnection,
        *,
        node: str,
        endpoints: Sequence[str],
        limit: int,
        now: datetime,
        lease_until: datetime,
        with_upstream: bool = False,
    ) -> list[Claimed]:
        """Move up to `limit` queued jobs of `endpoints` (with `with_upstream`: and jobs run on
        an upstream) without a concurrency key to running, owned by `node`: the highest priority
        first, and the oldest first among equals. Each claim opens a row in `job_attempts`.
        (Keyed jobs and jobs of endpoints with a global limit are claimed by
        LimitStore.job_claim_limited.)

        One UPDATE. On PostgreSQL it skips rows other nodes are claiming; on SQLite the
        caller's BEGIN IMMEDIATE holds the database write lock, so no other node claims.
        """
        if limit <= 0 or not (endpoints or with_upstream):
            return []
        params = {
            "node": node,
            "endpoints": list(endpoints),
            "limit": limit,
            "now": now,
            "lease_until": lease_until,
        }
        statement = self.driver.claim_with_upstream if with_upstream else self.driver.claim
        claimed = [claimed_from_row(r) for r in await conn.execute(statement, params)]
        claimed.sort(key=lambda c: c.job_id)
        return claimed

    async def job_promote_due(self, conn: AsyncConnection, *, now: datetime) -> int:
        """Move scheduled jobs whose run_at has come to the queue; how many moved."""
        due = self.driver.select_for_update(
            sa.select(jobs.c.job_id)
            .where(IS_SCHEDULED, jobs.c.run_at <= now)
            .order_by(jobs.c.run_at)
            .limit(PROMOTE_BATCH),
            skip_locked=True,
        )
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return 0
        moved = await conn.execute(
            sa.update(jobs)
            .where(jobs.c.job_id.in_(ids), IS_SCHEDULED)
            .values(status=QUEUED, updated_at=now)
        )
        return int(moved.rowcount)

    async def job_next_due(self, conn: AsyncConnection) -> datetime | None:
        """When the earliest scheduled job becomes due (None: nothing is scheduled)."""
        first = sa.select(sa.func.min(jobs.c.run_at)).where(IS_SCHEDULED)
        value: datetime | None = (await conn.execute(first)).scalar()
        return value

    async def job_reschedule(
        self,
        conn: AsyncConnection,
        *,
        job_id: int,
        attempt: int,
        outcome: Outcome,
        run_at: datetime,
        now: datetime,
    ) -> bool:
        """Put a job whose attempt failed back for another attempt at `run_at` (fenced).

        False when the attempt no longer holds the job, or a cancel was requested: then the
        caller records `outcome` as final instead (and the cancel wins).
        """
        stmt = (
            sa.update(jobs)
            .where(*_fence(job_id, attempt), sa.not_(jobs.c.cancel_requested))
            .values(
                status=SCHEDULED if run_at > now else QUEUED,
                run_at=run_at,
                owner=None,
                lease_expires_at=None,
                progress=0,
                started_at=None,
                status_map={"last_error": outcome.error_message or ""},
                updated_at=now,
            )
        )
        if (await conn.execute(stmt)).rowcount != 1:
            return False
        await self._close_attempts(
            conn, [(job_id, attempt, outcome.attempt_outcome, outcome.error_message)], now
        )
        return True

    async def job_lease_renew(
        self,
        conn: AsyncConnection,
        *,
        node: str,
        held: Sequence[tuple[int, int]],
        now: datetime,
        lease_until: datetime,
    ) -> list[LeaseState]:
        """Extend the leases of a node's running attempts, given as (job_id, attempt), at once.

        Returns the jobs still held, with their cancel flags; a job missing from the answer was
        lost (rescued, maybe re-claimed) and its result must not be written.
        """
        if not held:
            return []
        stmt = (
            sa.update(jobs)
            .where(
                sa.tuple_(jobs.c.job_id, jobs.c.attempt).in_(list(held)),
                jobs.c.owner == node,
                IS_RUNNING,
            )
            .values(lease_expires_at=lease_until, updated_at=now)
            .returning(jobs.c.job_id, jobs.c.attempt, jobs.c.cancel_requested)
        )
        return [LeaseState(*row) for row in (await conn.execute(stmt)).all()]

    async def job_cancel_flags(self, conn: AsyncConnection, job_ids: Sequence[int]) -> list[int]:
        """Which of these running jobs have a cancel request."""
        if not job_ids:
            return []
        stmt = sa.select(jobs.c.job_id).where(
            jobs.c.job_id.in_(job_ids), IS_RUNNING, jobs.c.cancel_requested
        )
        return list((await conn.execute(stmt)).scalars())

    async def job_progress(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, progress: int, now: datetime
    ) -> bool:
        """Record one attempt's progress; False when the attempt no longer holds its job."""
        return bool(await self.job_progress_many(conn, [(job_id, attempt, progress)], now))

    async def job_progress_many(
        self, conn: AsyncConnection, reported: Sequence[tuple[int, int, int]], now: datetime
    ) -> list[int]:
        """Record the progress of attempts, given as (job_id, attempt, percent), in one
        UPDATE; returns the ids of the jobs written (fenced: an attempt that no longer holds
        its job writes nothing)."""
        if not reported:
            return []
        percent = {job_id: max(0, min(100, p)) for job_id, _, p in reported}
        stmt = (
            sa.update(jobs)
            .where(
                sa.tuple_(jobs.c.job_id, jobs.c.attempt).in_([(j, a) for j, a, _ in reported]),
                IS_RUNNING,
            )
            .values(progress=sa.case(percent, value=jobs.c.job_id), updated_at=now)
            .returning(jobs.c.job_id)
        )
        return sorted((await conn.execute(stmt)).scalars())

    async def attempt_token_set(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, token_hash: str
    ) -> bool:
        """Keep the hash of the callback token an attempt hands out; False (nothing kept)
        when the attempt no longer holds its job."""
        stmt = (
            sa.update(job_attempts)
            .where(
                job_attempts.c.job_id == job_id,
                job_attempts.c.attempt == attempt,
                sa.exists().where(*_fence(job_id, attempt)),
            )
            .values(callback_token_hash=token_hash)
        )
        return (await conn.execute(stmt)).rowcount == 1

    async def attempt_of_token(
        self, conn: AsyncConnection, *, job_id: int, token_hash: str
    ) -> int | None:
        """The attempt at `job_id` the token of this hash was handed to; None: no attempt."""
        stmt = sa.select(job_attempts.c.attempt).where(
            job_attempts.c.job_id == job_id, job_attempts.c.callback_token_hash == token_hash
        )
        found: int | None = (await conn.execute(stmt)).scalar()
        return found

    async def job_finish(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, outcome: Outcome, now: datetime
    ) -> bool:
        """Record how an attempt ended. False when the attempt no longer holds the job."""
        [held] = await self.job_finish_many(conn, [(job_id, attempt, outcome)], now)
        return held

    async def job_finish_many(
        self,
        conn: AsyncConnection,
        outcomes: Sequence[tuple[int, int, Outcome]],
        now: datetime,
    ) -> list[bool]:
        """Record how attempts ended, given as (job_id, attempt, outcome), in one UPDATE.

        Each row is fenced like a single write: an attempt that no longer holds its job is
        left out (False). A job whose cancel was requested ends `cancelled` whatever its
        handler returned, so a client told "cancelled" is never contradicted later.
        """
        states = await self._finish(conn, outcomes, now)
        return [job_id in states for job_id, _, _ in outcomes]

    async def job_end_attempts(
        self,
        conn: AsyncConnection,
        outcomes: Sequence[tuple[int, int, Outcome]],
        now: datetime,
    ) -> list[JobState | None]:
        """The executor's write when attempts end: each job's new state, None where the
        attempt no longer held its job.

        An outcome with `retry_at` puts its job back (scheduled, or queued when due) unless a
        cancel was requested meanwhile; every other outcome ends its job, as job_finish_many.
        """
        states: dict[int, JobState] = {}
        final = []
        for job_id, attempt, outcome in outcomes:
            if outcome.retry_at is not None and await self.job_reschedule(
                conn, job_id=job_id, attempt=attempt, outcome=outcome, run_at=outcome.retry_at,
                now=now,
            ):  # fmt: skip
                states[job_id] = JobState.SCHEDULED if outcome.retry_at > now else JobState.QUEUED
            else:
                final.append((job_id, attempt, outcome))
        states.update(await self._finish(conn, final, now))
        return [states.get(job_id) for job_id, _, _ in outcomes]

    async def _finish(
        self,
        conn: AsyncConnection,
        outcomes: Sequence[tuple[int, int, Outcome]],
        now: datetime,
    ) -> dict[int, JobState]:
        """End jobs with their attempts' outcomes in one UPDATE: the final state of each job
        whose attempt still held it, and close those attempts."""
        if not outcomes:
            return {}
        rows: list[FinishRow] = [
            (
                job_id,
                attempt,
                o.status.value,
                json.dumps(o.status_map),
                o.status is JobState.DONE,
                o.response.encoding.value if o.response else None,
                o.response.data if o.response else None,
                o.response.text if o.response else None,
                o.attempt_outcome.value,
                o.error_message,
            )
            for job_id, attempt, o in outcomes
        ]
        held = {r.job_id: r for r in await self.driver.job_finish(conn, rows, now=now)}
        await self._remove_completed(
            [r.job_id for r in held.values() if r.remove_on_complete], conn
        )
        return {job_id: JobState(r.status) for job_id, r in held.items()}

    async def job_requeue(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, now: datetime, reason: str
    ) -> bool:
        """Give back a job this node is still running (soft stop ran out of time)."""
        result = await self._rescue(
            conn,
            _fence(job_id, attempt),
            now,
            reason,
            honour_max_attempts=False,
            outcome=AttemptOutcome.GIVEN_BACK,
        )
        return result.total == 1

    async def job_rescue_expired(
        self, conn: AsyncConnection, *, now: datetime, limit: int = 1000
    ) -> RescueResult:
        """Requeue (or end) running jobs whose lease ran out: their node is gone."""
        # Every running job has an owner (the claim sets both). Saying so puts the owner, the
        # leading column of ix_jobs_running, in range: SQLite with statistics otherwise read
        # the whole table (136 ms with a million finished jobs, holding the write lock).
        expired = self.driver.select_for_update(
            sa.select(jobs.c.job_id)
            .where(IS_RUNNING, jobs.c.owner.is_not(None), jobs.c.lease_expires_at < now)
            .limit(limit),
            skip_locked=True,
        )
        ids = list((await conn.execute(expired)).scalars())
        if not ids:
            return RescueResult()
        return await self._rescue(
            conn,
            [jobs.c.job_id.in_(ids), IS_RUNNING, jobs.c.lease_expires_at < now],
            now,
            "the executor running this job was lost (its lease expired)",
        )

    async def job_rescue_owned(
        self, conn: AsyncConnection, *, node: str, now: datetime
    ) -> RescueResult:
        """At start, a node takes back what it owned before it died, without waiting."""
        return await self._rescue(
            conn,
            [jobs.c.owner == node, IS_RUNNING],
            now,
            f"node {node!r} restarted while running this job",
        )

    async def _rescue(
        self,
        conn: AsyncConnection,
        where: list[sa.ColumnElement[bool]],
        now: datetime,
        reason: str,
        *,
        honour_max_attempts: bool = True,
        outcome: AttemptOutcome = AttemptOutcome.LOST,
    ) -> RescueResult:
        """Requeue the retryable jobs matched by `where`; end the others `error`.

        A job with a pending cancel ends `cancelled`; a non-retryable job is never run twice.
        Either way the attempt that was running is closed with `outcome`.
        """
        may_retry = sa.and_(jobs.c.retryable, sa.not_(jobs.c.cancel_requested))
        if honour_max_attempts:
            may_retry = sa.and_(may_retry, jobs.c.attempt < jobs.c.max_attempts)
        requeue = (
            sa.update(jobs)
            .where(*where, may_retry)
            .values(
                status=QUEUED,
                owner=None,
                lease_expires_at=None,
                progress=0,
                started_at=None,
                updated_at=now,
            )
            .returning(jobs.c.job_id, jobs.c.attempt, jobs.c.endpoint)
        )
        requeued_rows = (await conn.execute(requeue)).all()
        requeued = sorted(r.job_id for r in requeued_rows)
        exhausted = reason
        if honour_max_attempts:
            exhausted = f"{reason}; no attempts left or the endpoint is not retryable"
        end = (
            sa.update(jobs)
            .where(*where)
            .values(
                status=sa.case(
                    (jobs.c.cancel_requested, JobState.CANCELLED.value),
                    else_=JobState.ERROR.value,
                ),
                status_map=sa.case(
                    (jobs.c.cancel_requested, sa.literal(cancel_map(), sa.JSON)),
                    else_=sa.literal({"error_message": exhausted}, sa.JSON),
                ),
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
            .returning(jobs.c.job_id, jobs.c.attempt, jobs.c.endpoint, jobs.c.remove_on_complete)
        )
        rows = (await conn.execute(end)).all()
        endpoints: dict[str, int] = {}
        for r in [*requeued_rows, *rows]:
            endpoints[r.endpoint] = endpoints.get(r.endpoint, 0) + 1
        await self._close_attempts(
            conn, [(r.job_id, r.attempt, outcome, reason) for r in [*requeued_rows, *rows]], now
        )
        await self._remove_completed([r.job_id for r in rows if r.remove_on_complete], conn)
        return RescueResult(
            requeued=requeued, ended=sorted(r.job_id for r in rows), endpoints=endpoints
        )

    async def _close_attempts(
        self,
        conn: AsyncConnection,
        closed: Sequence[tuple[int, int, AttemptOutcome, str | None]],
        now: datetime,
    ) -> None:
        """Record how attempts ended, given as (job_id, attempt, outcome, error message)."""
        if not closed:
            return
        rows: list[AttemptRow] = [(j, a, o.value, e) for j, a, o, e in closed]
        await self.driver.attempts_close(conn, rows, now=now)

    async def _remove_completed(self, job_ids: list[int], conn: AsyncConnection) -> None:
        """Delete finished jobs that asked for it, leaving a tombstone behind."""
        if not job_ids:
            return
        deleted = await conn.execute(
            sa.delete(jobs)
            .where(jobs.c.job_id.in_(job_ids))
            .returning(
                jobs.c.job_id,
                jobs.c.job_tag,
                jobs.c.endpoint,
                jobs.c.status,
                jobs.c.request_digest,
                jobs.c.finished_at,
                jobs.c.created_by,
                jobs.c.project,
            )
        )
        stones: list[Mapping[str, Any]] = [dict(r._mapping) for r in deleted]
        if stones:
            await conn.execute(sa.insert(job_tombstones), stones)
            await self._delete_attempts(conn, [stone["job_id"] for stone in stones])

    async def _delete_attempts(self, conn: AsyncConnection, job_ids: list[int]) -> None:
        """A job's attempts go with it (there is no foreign key to cascade: see tables.py)."""
        if job_ids:
            await conn.execute(sa.delete(job_attempts).where(job_attempts.c.job_id.in_(job_ids)))


def _fence(job_id: int, attempt: int) -> list[sa.ColumnElement[bool]]:
    return [jobs.c.job_id == job_id, jobs.c.attempt == attempt, IS_RUNNING]
