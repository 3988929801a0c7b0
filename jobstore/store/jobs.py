"""Every SQL statement about jobs. Methods take a connection; the caller owns the transaction.

Writes about a running job are fenced by `(job_id, attempt, status='running')`: a node that
lost its lease can never overwrite a newer attempt, so each job is completed at most once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.models import (
    FINAL_STATES,
    Claimed,
    Encoding,
    Inserted,
    Job,
    JobQuery,
    JobState,
    NewJob,
    Outcome,
    Payload,
    Tombstone,
)
from jobstore.store.tables import UTCDateTime, cdm_submissions, job_tombstones, jobs

QUEUED, RUNNING = JobState.QUEUED.value, JobState.RUNNING.value
NEW_JOB_CHANNEL = "jobstore_new_job"
# Literal, not bound: PostgreSQL can only prove a partial index (WHERE status = 'queued')
# applies under a generic prepared plan when the predicate is a constant.
IS_QUEUED = jobs.c.status == sa.literal_column("'queued'")
IS_RUNNING = jobs.c.status == sa.literal_column("'running'")

# SQLite's planner has chosen an index over every state plus a sort; name the partial
# index of queued rows so a claim never sorts the queue. SQLAlchemy cannot render this hint.
_SQLITE_PICK = sa.text(
    "SELECT job_id FROM jobs INDEXED BY ix_jobs_queued"
    " WHERE status = 'queued' AND endpoint IN :endpoints"
    " ORDER BY job_id LIMIT :limit"
).bindparams(sa.bindparam("endpoints", expanding=True))

# Columns a listing needs; payloads and responses stay on disk.
_SUMMARY_COLUMNS = [
    c
    for c in jobs.c
    if c.name not in ("request_data", "request_text", "response_data", "response_text")
]


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


class JobStore:
    """Job SQL for one dialect ("sqlite" or "postgresql")."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported dialect {dialect!r}")
        self.dialect = dialect
        # Built once: the hot path only binds parameters.
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._insert = (
            insert(jobs)
            .on_conflict_do_nothing(index_elements=[jobs.c.job_tag])
            .returning(jobs.c.job_id, jobs.c.job_tag, sort_by_parameter_order=False)
        )

    # -- create and read --------------------------------------------------------------------

    async def job_create_many(
        self, conn: AsyncConnection, news: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        """Create a batch of jobs in one multi-row INSERT; one answer per job, in order.

        A tag already held (by a live job, a removed job, or an earlier job of the same
        batch) creates nothing and answers with the holder's id and request digest.
        """
        # SQLAlchemy sends this as one INSERT ... VALUES (...), (...) RETURNING.
        result = await conn.execute(self._insert, [_insert_row(new, now) for new in news])
        created = {tag: job_id for job_id, tag in result.all()}
        # tag -> (job_id, request digest, created_by) of the job that holds it
        holders: dict[str, tuple[int, str, str | None]] = {}
        answers: list[Inserted | None] = []
        for new in news:
            tag = new.job_tag
            if tag in created and tag not in holders:
                holders[tag] = (created[tag], new.request_digest, new.created_by)
                answers.append(Inserted(created[tag], True))
            else:
                answers.append(None)  # held by an earlier job: resolved below
        missing = {n.job_tag for n, a in zip(news, answers, strict=True) if a is None}
        missing -= holders.keys()
        if missing:
            live = await conn.execute(
                sa.select(
                    jobs.c.job_tag, jobs.c.job_id, jobs.c.request_digest, jobs.c.created_by
                ).where(jobs.c.job_tag.in_(missing))
            )
            holders.update({tag: (i, digest, owner) for tag, i, digest, owner in live.all()})
        # Tombstones: for tags that lost to a removed job, and for given tags we just
        # inserted (on PostgreSQL an insert waits for a concurrent removal of the same tag
        # to commit, so its tombstone is visible here; then our row must go).
        check = {t for t in missing if t not in holders}
        check |= {n.job_tag for n, a in zip(news, answers, strict=True) if a and n.tag_given}
        if check:
            stones = await conn.execute(
                sa.select(
                    job_tombstones.c.job_tag,
                    job_tombstones.c.job_id,
                    job_tombstones.c.request_digest,
                    job_tombstones.c.created_by,
                ).where(job_tombstones.c.job_tag.in_(check))
            )
            found = {tag: (i, digest, owner) for tag, i, digest, owner in stones.all()}
            undo = [created[t] for t in found if t in created]
            if undo:
                await conn.execute(sa.delete(jobs).where(jobs.c.job_id.in_(undo)))
            for i, (new, answer) in enumerate(zip(news, answers, strict=True)):
                if answer is not None and answer.created and new.job_tag in found:
                    answers[i] = None
            holders.update(found)
        final = []
        for new, answer in zip(news, answers, strict=True):
            if answer is None:
                if new.job_tag not in holders:  # pragma: no cover - a tag both taken and free
                    raise RuntimeError(f"job_tag {new.job_tag!r} vanished during create")
                job_id, digest, owner = holders[new.job_tag]
                answer = Inserted(job_id, False, digest, owner)
            final.append(answer)
        return final

    async def job_get(self, conn: AsyncConnection, job_id: int) -> Job | None:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id))).first()
        return Job.from_row(row._mapping) if row else None

    async def job_get_by_tag(self, conn: AsyncConnection, tag: str) -> Job | None:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.job_tag == tag))).first()
        return Job.from_row(row._mapping) if row else None

    async def tombstone_get(self, conn: AsyncConnection, job_id: int) -> Tombstone | None:
        row = (
            await conn.execute(sa.select(job_tombstones).where(job_tombstones.c.job_id == job_id))
        ).first()
        return Tombstone.from_row(row._mapping) if row else None

    async def tombstone_get_by_tag(self, conn: AsyncConnection, tag: str) -> Tombstone | None:
        row = (
            await conn.execute(sa.select(job_tombstones).where(job_tombstones.c.job_tag == tag))
        ).first()
        return Tombstone.from_row(row._mapping) if row else None

    async def job_list(
        self,
        conn: AsyncConnection,
        *,
        states: Iterable[JobState] | None = None,
        limit: int = 1000,
        created_by: str | None = None,
    ) -> list[Job]:
        """Jobs without their payloads, newest first."""
        query = JobQuery(states=None if states is None else tuple(states), created_by=created_by)
        return await self.job_search(conn, query, limit=limit)

    async def job_search(self, conn: AsyncConnection, query: JobQuery, *, limit: int) -> list[Job]:
        """Jobs matching `query`, without payloads, newest first (keyset on job_id)."""
        stmt = sa.select(*_SUMMARY_COLUMNS).order_by(jobs.c.job_id.desc()).limit(limit)
        if query.states is not None:
            stmt = stmt.where(jobs.c.status.in_([s.value for s in query.states]))
        if query.endpoint is not None:
            stmt = stmt.where(jobs.c.endpoint == query.endpoint)
        if query.tag is not None:
            stmt = stmt.where(jobs.c.job_tag == query.tag)
        if query.created_after is not None:
            stmt = stmt.where(jobs.c.created_at >= query.created_after)
        if query.created_before is not None:
            stmt = stmt.where(jobs.c.created_at < query.created_before)
        if query.created_by is not None:
            stmt = stmt.where(jobs.c.created_by == query.created_by)
        if query.before_id is not None:
            stmt = stmt.where(jobs.c.job_id < query.before_id)
        return [Job.from_row(r._mapping) for r in await conn.execute(stmt)]

    async def job_status_counts(
        self, conn: AsyncConnection, *, cap: int, created_by: str | None = None
    ) -> dict[JobState, int]:
        """Jobs per state, each counted up to `cap` + 1 (more than `cap` reads as "cap+").

        Each count reads at most cap + 1 index entries, so the cost does not grow with the
        table: a dashboard can ask on every refresh at a million rows.
        """
        parts = []
        for state in JobState:
            inner = sa.select(sa.literal(1).label("one")).where(
                jobs.c.status == sa.literal_column(f"'{state.value}'")
            )
            if created_by is not None:
                inner = inner.where(jobs.c.created_by == created_by)
            capped = inner.limit(cap + 1).subquery()
            parts.append(
                sa.select(
                    sa.literal(state.value).label("status"), sa.func.count().label("n")
                ).select_from(capped)
            )
        rows = await conn.execute(sa.union_all(*parts))
        return {JobState(status): int(n) for status, n in rows.all()}

    async def job_active_counts(self, conn: AsyncConnection) -> dict[JobState, int]:
        """Exact numbers of queued and running jobs (read through their partial indexes)."""
        queued = sa.select(sa.func.count()).select_from(jobs).where(IS_QUEUED)
        running = sa.select(sa.func.count()).select_from(jobs).where(IS_RUNNING)
        q = (await conn.execute(queued)).scalar_one()
        r = (await conn.execute(running)).scalar_one()
        return {JobState.QUEUED: int(q), JobState.RUNNING: int(r)}

    async def job_notify_created(self, conn: AsyncConnection) -> None:
        """Wake idle executors on other nodes when this transaction commits (PostgreSQL)."""
        if self.dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_notify(NEW_JOB_CHANNEL, "")))

    # -- executor ---------------------------------------------------------------------------

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

        PostgreSQL skips rows other nodes are claiming (FOR UPDATE SKIP LOCKED). SQLite has no
        row locks (SQLAlchemy drops FOR UPDATE there without a word); the caller's BEGIN
        IMMEDIATE holds the database write lock instead, so the select and update are atomic.
        """
        if limit <= 0 or not endpoints:
            return []
        if self.dialect == "postgresql":
            # A MATERIALIZED CTE runs once. As an IN (subquery), PostgreSQL may rescan it in a
            # nested loop, and each rescan skips the rows it just locked: more than `limit`.
            picked = (
                sa.select(jobs.c.job_id)
                .where(IS_QUEUED, jobs.c.endpoint.in_(endpoints))
                .order_by(jobs.c.job_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("picked")
                .prefix_with("MATERIALIZED")
            )
            target = jobs.c.job_id == picked.c.job_id
        else:
            found = await conn.execute(_SQLITE_PICK, {"endpoints": list(endpoints), "limit": limit})
            ids = list(found.scalars())
            if not ids:
                return []
            target = jobs.c.job_id.in_(ids)
        stmt = (
            sa.update(jobs)
            .where(target, IS_QUEUED)
            .values(
                status=RUNNING,
                owner=node,
                attempt=jobs.c.attempt + 1,
                lease_expires_at=lease_until,
                started_at=now,
                updated_at=now,
            )
            .returning(
                jobs.c.job_id,
                jobs.c.job_tag,
                jobs.c.endpoint,
                jobs.c.request_encoding,
                jobs.c.request_data,
                jobs.c.request_text,
                jobs.c.attempt,
                jobs.c.cancel_requested,
            )
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
            for r in await conn.execute(stmt)
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
            .where(*self._fence(job_id, attempt))
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
        rows = [
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
        params: dict[str, Any] = {"now": now, "cancel_map": json.dumps(_cancel_map())}
        if self.dialect == "postgresql":
            for name, column in zip(_FINISH_COLUMNS, zip(*rows, strict=True), strict=True):
                params[name] = list(column)
            stmt = _PG_FINISH
        else:
            params.update(
                {f"{name}{n}": value for n, row in enumerate(rows) for name, value in
                 zip(_FINISH_COLUMNS, row, strict=True)}
            )  # fmt: skip
            stmt = _sqlite_finish(len(rows))
        held = (await conn.execute(stmt, params)).all()
        await self._remove_completed([r.job_id for r in held if r.remove_on_complete], conn)
        ids = {r.job_id for r in held}
        return [job_id in ids for job_id, _, _ in outcomes]

    async def job_requeue(
        self, conn: AsyncConnection, *, job_id: int, attempt: int, now: datetime, reason: str
    ) -> bool:
        """Give back a job this node is still running (soft stop ran out of time)."""
        result = await self._rescue(
            conn, [*self._fence(job_id, attempt)], now, reason, honour_max_attempts=False
        )
        return result.total == 1

    async def job_rescue_expired(
        self, conn: AsyncConnection, *, now: datetime, limit: int = 1000
    ) -> RescueResult:
        """Requeue (or end) running jobs whose lease ran out: their node is gone."""
        expired = (
            sa.select(jobs.c.job_id).where(IS_RUNNING, jobs.c.lease_expires_at < now).limit(limit)
        )
        if self.dialect == "postgresql":
            expired = expired.with_for_update(skip_locked=True)
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
                    (jobs.c.cancel_requested, sa.literal(_cancel_map(), sa.JSON)),
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

    # -- cancel -----------------------------------------------------------------------------

    async def job_cancel(
        self,
        conn: AsyncConnection,
        job_ids: Sequence[int],
        now: datetime,
        *,
        created_by: str | None = None,
    ) -> dict[int, str]:
        """Cancel jobs: queued ones at once, running ones by request.

        With `created_by`, other users' jobs are left alone and reported "not_found".
        Returns per id: "cancelled", "cancel_requested", "already_done" or "not_found".
        """
        if not job_ids:
            return {}
        mine: list[sa.ColumnElement[bool]] = [jobs.c.job_id.in_(job_ids)]
        if created_by is not None:
            mine.append(jobs.c.created_by == created_by)
        queued = (
            sa.update(jobs)
            .where(*mine, IS_QUEUED)
            .values(
                status=JobState.CANCELLED.value,
                status_map=_cancel_map(),
                finished_at=now,
                updated_at=now,
            )
            .returning(jobs.c.job_id, jobs.c.remove_on_complete)
        )
        rows = (await conn.execute(queued)).all()
        result = {r.job_id: "cancelled" for r in rows}
        await self._remove_completed([r.job_id for r in rows if r.remove_on_complete], conn)
        running = (
            sa.update(jobs)
            .where(*mine, IS_RUNNING)
            .values(cancel_requested=True, updated_at=now)
            .returning(jobs.c.job_id)
        )
        result.update(dict.fromkeys((await conn.execute(running)).scalars(), "cancel_requested"))
        rest = [i for i in job_ids if i not in result]
        if rest:
            finished = sa.select(jobs.c.job_id).where(jobs.c.job_id.in_(rest))
            removed = sa.select(job_tombstones.c.job_id).where(job_tombstones.c.job_id.in_(rest))
            if created_by is not None:
                finished = finished.where(jobs.c.created_by == created_by)
                removed = removed.where(job_tombstones.c.created_by == created_by)
            done = await conn.execute(sa.union_all(finished, removed))
            result.update(dict.fromkeys(done.scalars(), "already_done"))
        return {i: result.get(i, "not_found") for i in job_ids}

    # -- retention --------------------------------------------------------------------------

    async def job_prune(
        self, conn: AsyncConnection, state: JobState, *, finished_before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` jobs (and tombstones) in `state` that finished before a time.

        Their CDM submissions go with them. Returns how many jobs and tombstones were deleted.
        """
        if state not in FINAL_STATES:
            raise ValueError(f"only finished jobs are pruned, not {state.value!r}")
        status = sa.literal_column(f"'{state.value}'", sa.String())
        oldest_jobs = (
            sa.select(jobs.c.job_id)
            .where(jobs.c.status == status, jobs.c.finished_at < finished_before)
            .order_by(jobs.c.finished_at)
            .limit(limit)
        )
        deleted = list(
            (
                await conn.execute(
                    sa.delete(jobs)
                    .where(jobs.c.job_id.in_(oldest_jobs.scalar_subquery()))
                    .returning(jobs.c.job_id)
                )
            ).scalars()
        )
        t = job_tombstones
        oldest_stones = (
            sa.select(t.c.job_id)
            .where(t.c.status == state.value, t.c.finished_at < finished_before)
            .order_by(t.c.finished_at)
            .limit(limit)
        )
        deleted += (
            await conn.execute(
                sa.delete(t)
                .where(t.c.job_id.in_(oldest_stones.scalar_subquery()))
                .returning(t.c.job_id)
            )
        ).scalars()
        if deleted:
            await conn.execute(
                sa.delete(cdm_submissions).where(cdm_submissions.c.job_id.in_(deleted))
            )
        return len(deleted)

    async def maintenance_lock(self, conn: AsyncConnection, name: str) -> bool:
        """Try to become the one node doing `name` until this transaction ends.

        PostgreSQL: a transaction-level advisory lock. SQLite: the transaction already holds
        the database's only write lock, so the caller is alone.
        """
        if self.dialect != "postgresql":
            return True
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        got = await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))
        return bool(got.scalar_one())

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _fence(job_id: int, attempt: int) -> list[sa.ColumnElement[bool]]:
        return [jobs.c.job_id == job_id, jobs.c.attempt == attempt, IS_RUNNING]

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


# -- set-based completion -----------------------------------------------------------------
# One UPDATE records a whole batch of outcomes, joined to a row set `v`: typed arrays through
# unnest on PostgreSQL, a VALUES list on SQLite. Only placeholders are generated, never data.

_FINISH_COLUMNS = ("job_id", "attempt", "status", "status_map", "done", "renc", "rdata", "rtext")
_FINISH_SET = """
    status = CASE WHEN jobs.cancel_requested THEN 'cancelled' ELSE v.status END,
    status_map = CASE WHEN jobs.cancel_requested THEN {cancel_map} ELSE {status_map} END,
    progress = CASE WHEN jobs.cancel_requested THEN jobs.progress
                    WHEN v.done THEN 100 ELSE jobs.progress END,
    response_encoding = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.renc END,
    response_data = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.rdata END,
    response_text = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.rtext END,
    lease_expires_at = NULL,
    finished_at = :now,
    updated_at = :now
"""
_FINISH_WHERE = """
WHERE jobs.job_id = v.job_id AND jobs.attempt = v.attempt AND jobs.status = 'running'
RETURNING jobs.job_id, jobs.remove_on_complete
"""
_PG_FINISH = sa.text(
    "UPDATE jobs SET "
    + _FINISH_SET.format(
        cancel_map="CAST(:cancel_map AS JSON)", status_map="CAST(v.status_map AS JSON)"
    )
    + """FROM unnest(CAST(:job_id AS BIGINT[]), CAST(:attempt AS INTEGER[]),
                     CAST(:status AS TEXT[]), CAST(:status_map AS TEXT[]),
                     CAST(:done AS BOOLEAN[]), CAST(:renc AS TEXT[]),
                     CAST(:rdata AS BYTEA[]), CAST(:rtext AS TEXT[]))
         AS v(job_id, attempt, status, status_map, done, renc, rdata, rtext)"""
    + _FINISH_WHERE
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


@functools.lru_cache(maxsize=64)
def _sqlite_finish(count: int) -> sa.TextClause:
    values = ", ".join(
        "(" + ", ".join(f":{name}{n}" for name in _FINISH_COLUMNS) + ")" for n in range(count)
    )
    return sa.text(
        f"WITH v({', '.join(_FINISH_COLUMNS)}) AS (VALUES {values}) "
        "UPDATE jobs SET "
        + _FINISH_SET.format(cancel_map=":cancel_map", status_map="v.status_map")
        + "FROM v"
        + _FINISH_WHERE
    ).bindparams(
        sa.bindparam("now", type_=UTCDateTime()),
        *(sa.bindparam(f"rdata{n}", type_=sa.LargeBinary()) for n in range(count)),
    )


def _insert_row(new: NewJob, now: datetime) -> dict[str, Any]:
    return {
        "job_tag": new.job_tag,
        "endpoint": new.endpoint,
        "request_encoding": new.request.encoding.value,
        "request_data": new.request.data,
        "request_text": new.request.text,
        "request_digest": new.request_digest,
        "options": new.options,
        "status": QUEUED,
        "progress": 0,
        "status_map": {},
        "remove_on_complete": new.remove_on_complete,
        "retryable": new.retryable,
        "max_attempts": new.max_attempts,
        "attempt": 0,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "created_by": new.created_by,
        "project": new.project,
        "source_ip": new.source_ip,
    }


def _cancel_map() -> dict[str, str]:
    return {"error_message": "cancelled on request"}
