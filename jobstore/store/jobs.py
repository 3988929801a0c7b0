"""Job SQL about creating, reading, listing, cancelling and pruning jobs.

The executor's statements (claim, leases, finish, rescue) are in `runs.py`; `JobStore` offers
both. Methods take a connection; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.models import (
    FINAL_STATES,
    RETRYABLE_STATES,
    Attempt,
    Inserted,
    Job,
    JobQuery,
    JobState,
    NewJob,
    Tombstone,
)
from jobstore.store.driver import LIMITED_PAYLOAD, Driver
from jobstore.store.runs import RunStore
from jobstore.store.statements import (
    IS_QUEUED,
    IS_RUNNING,
    IS_SCHEDULED,
    QUEUED,
    SCHEDULED,
    cancel_map,
)
from jobstore.store.tables import job_attempts, job_tombstones, jobs

# The job holding a tag: job_id, request digest, created_by, endpoint, request encoding.
Holder = tuple[int, str, str | None, str, str | None]

# Columns a listing needs; payloads and responses stay on disk.
_SUMMARY_COLUMNS = [
    c
    for c in jobs.c
    if c.name not in ("request_data", "request_text", "response_data", "response_text")
]
# One job by id or by tag, with every column or without its request (a status read returns
# the response only). Built once: a statement object keeps its cache key, so a lookup only
# binds its parameter (building the select and its cache key per call showed in profiles).
_WITHOUT_REQUEST = [
    c for c in jobs.c if c.name not in ("request_data", "request_text", "request_digest")
]
_BY_ID = jobs.c.job_id == sa.bindparam("key")
_BY_TAG = jobs.c.job_tag == sa.bindparam("key")
_JOB_GET = {
    (key, with_request): sa.select(*(jobs.c if with_request else _WITHOUT_REQUEST)).where(where)
    for key, where in (("id", _BY_ID), ("tag", _BY_TAG))
    for with_request in (True, False)
}


class JobStore(RunStore):
    """Job SQL on the database `driver` speaks for."""

    def __init__(self, driver: Driver) -> None:
        super().__init__(driver)
        # Built once: the hot path only binds parameters.
        self._insert = driver.insert_skip_conflict(jobs, [jobs.c.job_tag]).returning(
            jobs.c.job_id, jobs.c.job_tag, sort_by_parameter_order=False
        )

    # -- create and read --------------------------------------------------------------------

    async def job_create_many(
        self, conn: AsyncConnection, news: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        """Create a batch of jobs in one multi-row INSERT; one answer per job, in order.

        A tag already held (by a live job, a removed job, or an earlier job of the same
        batch) creates nothing and answers with the holder's id, request digest, owner,
        endpoint and request encoding (a removed job's encoding is not kept: None).
        """
        # SQLAlchemy sends this as one INSERT ... VALUES (...), (...) RETURNING.
        result = await conn.execute(self._insert, [_insert_row(new, now) for new in news])
        created = {tag: job_id for job_id, tag in result.all()}
        # tag -> the job that holds it: (job_id, request digest, created_by, endpoint, encoding)
        holders: dict[str, Holder] = {}
        answers: list[Inserted | None] = []
        for new in news:
            tag = new.job_tag
            if tag in created and tag not in holders:
                holders[tag] = (
                    created[tag],
                    new.request_digest,
                    new.created_by,
                    new.endpoint,
                    new.request.encoding.value,
                )
                answers.append(Inserted(created[tag], True, created_at=now))
            else:
                answers.append(None)  # held by an earlier job: resolved below
        missing = {n.job_tag for n, a in zip(news, answers, strict=True) if a is None}
        missing -= holders.keys()
        if missing:
            live = await conn.execute(
                sa.select(
                    jobs.c.job_tag,
                    jobs.c.job_id,
                    jobs.c.request_digest,
                    jobs.c.created_by,
                    jobs.c.endpoint,
                    jobs.c.request_encoding,
                ).where(jobs.c.job_tag.in_(missing))
            )
            for tag, job_id, digest, owner, endpoint, encoding in live.all():
                holders[tag] = (job_id, digest, owner, endpoint, encoding)
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
                    job_tombstones.c.endpoint,
                ).where(job_tombstones.c.job_tag.in_(check))
            )
            found: dict[str, Holder] = {
                tag: (i, digest, owner, endpoint, None)
                for tag, i, digest, owner, endpoint in stones.all()
            }
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
                job_id, digest, owner, endpoint, encoding = holders[new.job_tag]
                answer = Inserted(job_id, False, digest, owner, endpoint, encoding)
            final.append(answer)
        return final

    async def job_get(
        self, conn: AsyncConnection, job_id: int, *, with_request: bool = True
    ) -> Job | None:
        """The job, or None; without `with_request`, its request payload is not read (a
        status read: the payload may be large, and most of the row)."""
        statement = _JOB_GET["id", with_request]
        row = (await conn.execute(statement, {"key": job_id})).first()
        return Job.from_row(row._mapping) if row else None

    async def job_attempts(self, conn: AsyncConnection, job_id: int) -> list[Attempt]:
        """Every run of a job, first to last."""
        stmt = (
            sa.select(job_attempts)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        )
        return [Attempt.from_row(r._mapping) for r in await conn.execute(stmt)]

    async def job_get_by_tag(
        self, conn: AsyncConnection, tag: str, *, with_request: bool = True
    ) -> Job | None:
        """`job_get` by tag."""
        statement = _JOB_GET["tag", with_request]
        row = (await conn.execute(statement, {"key": tag})).first()
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
        return [Job.from_row(r._mapping) for r in await conn.execute(_filtered(stmt, query))]

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
        """Exact numbers of scheduled, queued and running jobs (through their partial indexes)."""
        counts = {}
        for state, where in (
            (JobState.SCHEDULED, IS_SCHEDULED),
            (JobState.QUEUED, IS_QUEUED),
            (JobState.RUNNING, IS_RUNNING),
        ):
            stmt = sa.select(sa.func.count()).select_from(jobs).where(where)
            counts[state] = int((await conn.execute(stmt)).scalar_one())
        return counts

    async def job_notify_created(self, conn: AsyncConnection, *, limited: bool = True) -> None:
        """Wake idle executors on other nodes when this transaction commits (where they listen);
        `limited`: some of the jobs wait for the limited claim (a key, or a global limit)."""
        await self.driver.new_jobs_notify(conn, LIMITED_PAYLOAD if limited else "")

    # -- cancel -----------------------------------------------------------------------------

    async def job_cancel(
        self,
        conn: AsyncConnection,
        job_ids: Sequence[int],
        now: datetime,
        *,
        created_by: str | None = None,
    ) -> dict[int, str]:
        """Cancel jobs: scheduled and queued ones at once, running ones by request.

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
            .where(*mine, sa.or_(IS_QUEUED, IS_SCHEDULED))
            .values(
                status=JobState.CANCELLED.value,
                status_map=cancel_map(),
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

    # -- retry ------------------------------------------------------------------------------

    async def job_retry(
        self,
        conn: AsyncConnection,
        job_ids: Sequence[int],
        now: datetime,
        *,
        created_by: str | None = None,
    ) -> dict[int, str]:
        """Put finished `error` and `cancelled` jobs back in the queue for one more attempt.

        The job starts over (no owner, progress 0, no response, no cancel request) and keeps
        its attempt count, so its next run is a new row in `job_attempts`; max_attempts grows
        if needed so that run is allowed. Answers the jobs moved (id -> endpoint); the others
        were not finished that way, belong to another user (`created_by`), or do not exist.
        """
        if not job_ids:
            return {}
        where: list[sa.ColumnElement[bool]] = [
            jobs.c.job_id.in_(job_ids),
            jobs.c.status.in_([s.value for s in RETRYABLE_STATES]),
        ]
        if created_by is not None:
            where.append(jobs.c.created_by == created_by)
        stmt = (
            sa.update(jobs)
            .where(*where)
            .values(
                status=QUEUED,
                owner=None,
                lease_expires_at=None,
                cancel_requested=False,
                progress=0,
                status_map={},
                response_encoding=None,
                response_data=None,
                response_text=None,
                run_at=None,
                started_at=None,
                finished_at=None,
                updated_at=now,
                max_attempts=sa.case(
                    (jobs.c.max_attempts <= jobs.c.attempt, jobs.c.attempt + 1),
                    else_=jobs.c.max_attempts,
                ),
            )
            .returning(jobs.c.job_id, jobs.c.endpoint)
        )
        return {row.job_id: row.endpoint for row in sorted(await conn.execute(stmt))}

    async def job_ids_matching(
        self, conn: AsyncConnection, query: JobQuery, *, limit: int
    ) -> list[int]:
        """Ids of the jobs `query` selects, newest first, at most `limit` (bulk actions)."""
        stmt = _filtered(sa.select(jobs.c.job_id), query).order_by(jobs.c.job_id.desc())
        return list((await conn.execute(stmt.limit(limit))).scalars())

    # -- retention --------------------------------------------------------------------------

    async def job_prune(
        self, conn: AsyncConnection, state: JobState, *, finished_before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` jobs (and tombstones) in `state` that finished before a time.

        Returns how many jobs and tombstones were deleted.
        """
        return len(
            await self.job_prune_ids(conn, state, finished_before=finished_before, limit=limit)
        )

    async def job_prune_ids(
        self, conn: AsyncConnection, state: JobState, *, finished_before: datetime, limit: int
    ) -> list[int]:
        """`job_prune`, answering with the ids deleted (rows elsewhere may refer to them)."""
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
        await self._delete_attempts(conn, deleted)
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
        return deleted

    async def maintenance_lock(self, conn: AsyncConnection, name: str) -> bool:
        """Try to become the one node doing `name` until this transaction ends."""
        return await self.driver.maintenance_lock(conn, name)


def _filtered(stmt: sa.Select[Any], query: JobQuery) -> sa.Select[Any]:
    """`stmt` narrowed to the jobs `query` selects."""
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
    return stmt


def job_as_written(new: NewJob, job_id: int, now: datetime) -> Job:
    """The row a create wrote for `new` at `now`, as read back: without reading it back."""
    return Job.from_row({**_insert_row(new, now), "job_id": job_id})


def _insert_row(new: NewJob, now: datetime) -> dict[str, Any]:
    run_at = new.run_at
    if new.delay_seconds is not None:
        run_at = now + timedelta(seconds=new.delay_seconds)
    return {
        "job_tag": new.job_tag,
        "endpoint": new.endpoint,
        "request_encoding": new.request.encoding.value,
        "request_data": new.request.data,
        "request_text": new.request.text,
        "request_digest": new.request_digest,
        "options": new.options,
        "status": SCHEDULED if run_at is not None and run_at > now else QUEUED,
        "run_at": run_at,
        "priority": new.priority,
        "retry_errors": new.retry_errors,
        "backoff_seconds": new.backoff_seconds,
        "timeout_seconds": new.timeout_seconds,
        "concurrency_key": new.concurrency_key,
        "upstream": new.upstream,
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
