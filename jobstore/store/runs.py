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

from jobstore.domain.models import Claimed, Encoding, JobState, Outcome, Payload
from jobstore.store.driver import Driver
from jobstore.store.statements import IS_RUNNING, QUEUED, FinishRow, cancel_map
from jobstore.store.tables import job_tombstones, jobs


@dataclass(frozen=True, slots=True)
class RescueResult:
    """What a rescue pass did: jobs put back in the queue, and jobs ended for good."""

    requeued: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)

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
    ) -> list[Claimed]:
        """Move up to `limit` of the oldest queued jobs to running, owned by `node`.

        One statement. On PostgreSQL it skips rows other nodes are claiming; on SQLite the
        caller's BEGIN IMMEDIATE holds the database write lock, so no other node claims.
        """
        if limit <= 0 or not endpoints:
            return []
        stmt, params = self.driver.job_claim_statement(
            node=node, endpoints=endpoints, limit=limit, now=now, lease_until=lease_until
        )
        claimed = [
            Claimed(
                job_id=r.job_id,
                job_tag=r.job_tag,
                endpoint=r.endpoint,
                request=Payload(Encoding(r.request_encoding), r.request_data, r.request_text),
                attempt=r.attempt,
                cancel_requested=r.cancel_requested,
            )
            for r in await conn.execute(stmt, params)
        ]
        claimed.sort(key=lambda c: c.job_id)
        return claimed

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
        stmt = (
            sa.update(jobs)
            .where(*_fence(job_id, attempt))
            .values(progress=max(0, min(100, progress)), updated_at=now)
        )
        return (await conn.execute(stmt)).rowcount == 1

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
        if not outcomes:
            return []
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
            )
            for job_id, attempt, o in outcomes
        ]
        stmt, params = self.driver.job_finish_statement(rows)
        params.update(now=now, cancel_map=json.dumps(cancel_map()))
        held = (await conn.execute(stmt, params)).all()
        await self._remove_completed([r.job_id for r in held if r.remove_on_complete], conn)
        ids = {r.job_id for r in held}
        return [job_id in ids for job_id, _, _ in outcomes]

    async def job_requeue(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, now: datetime, reason: str
    ) -> bool:
        """Give back a job this node is still running (soft stop ran out of time)."""
        result = await self._rescue(
            conn, _fence(job_id, attempt), now, reason, honour_max_attempts=False
        )
        return result.total == 1

    async def job_rescue_expired(
        self, conn: AsyncConnection, *, now: datetime, limit: int = 1000
    ) -> RescueResult:
        """Requeue (or end) running jobs whose lease ran out: their node is gone."""
        expired = self.driver.select_for_update(
            sa.select(jobs.c.job_id).where(IS_RUNNING, jobs.c.lease_expires_at < now).limit(limit),
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
    ) -> RescueResult:
        """Requeue the retryable jobs matched by `where`; end the others `error`.

        A job with a pending cancel ends `cancelled`; a non-retryable job is never run twice.
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
            .returning(jobs.c.job_id)
        )
        requeued = sorted((await conn.execute(requeue)).scalars())
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
            .returning(jobs.c.job_id, jobs.c.remove_on_complete)
        )
        rows = (await conn.execute(end)).all()
        await self._remove_completed([r.job_id for r in rows if r.remove_on_complete], conn)
        return RescueResult(requeued=requeued, ended=sorted(r.job_id for r in rows))

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


def _fence(job_id: int, attempt: int) -> list[sa.ColumnElement[bool]]:
    return [jobs.c.job_id == job_id, jobs.c.attempt == attempt, IS_RUNNING]
