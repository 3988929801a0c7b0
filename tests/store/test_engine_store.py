"""The engine's SQL on both databases: attempts opened and closed in the transactions that
start and end runs, due jobs promoted on time, fenced reschedules, retries from outside, and the
migration that brought them to databases holding jobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.models import JobState, Outcome
from jobstore.store import Database, JobStore, migrate_to_head
from jobstore.store.migrate import downgrade_to
from jobstore.store.tables import job_attempts, jobs
from tests.support.factories import LEASE, claim, insert, new_job


async def attempts(db: Database, job_id: int) -> list[tuple[Any, ...]]:
    async with db.reading() as conn:
        rows = await conn.execute(
            sa.select(
                job_attempts.c.attempt,
                job_attempts.c.node,
                job_attempts.c.outcome,
                job_attempts.c.finished_at.is_not(None),
            )
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        )
        return [tuple(r) for r in rows.all()]


async def test_a_claim_opens_an_attempt_in_its_own_transaction(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("a"))
    async with db.transaction() as conn:
        [_claimed] = await store.job_claim(
            conn, node="n1", endpoints=["/echo"], limit=1, now=clock.now(),
            lease_until=clock.now() + LEASE,
        )  # fmt: skip
        await conn.rollback()  # a claim that does not commit leaves no attempt behind
    assert await attempts(db, job_id) == []
    assert await claim(db, store, clock) == [job_id]
    assert await attempts(db, job_id) == [(1, "n1", None, False)]


async def test_reschedule_is_fenced_and_a_cancel_request_wins(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    first, second = await insert(db, store, clock, new_job("r1"), new_job("r2"))
    await claim(db, store, clock)
    failed = Outcome(JobState.ERROR, status_map={"error_message": "boom"})
    later = clock.now() + timedelta(seconds=5)
    async with db.transaction() as conn:
        await store.job_cancel(conn, [second], clock.now())
        assert not await store.job_reschedule(
            conn, job_id=first, attempt=2, outcome=failed, run_at=later, now=clock.now()
        )
        states = await store.job_end_attempts(
            conn,
            [(first, 1, _retry(failed, later)), (second, 1, _retry(failed, later))],
            clock.now(),
        )
    assert states == [JobState.SCHEDULED, JobState.CANCELLED]
    async with db.reading() as conn:
        job = await store.job_get(conn, first)
    assert job is not None and job.status is JobState.SCHEDULED and job.run_at == later
    assert job.owner is None and job.status_map == {"last_error": "boom"}
    assert await attempts(db, first) == [(1, "n1", "error", True)]
    assert await attempts(db, second) == [(1, "n1", "cancelled", True)]


def _retry(outcome: Outcome, at: Any) -> Outcome:
    return replace(outcome, retry_at=at)


async def test_due_jobs_are_promoted_by_run_at_and_not_before(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    now = clock.now()
    soon, _later = await insert(
        db,
        store,
        clock,
        _delayed(new_job("soon"), 10),
        _delayed(new_job("later"), 20),
    )
    async with db.transaction() as conn:
        assert await store.job_next_due(conn) == now + timedelta(seconds=10)
        assert await store.job_promote_due(conn, now=now + timedelta(seconds=9.999)) == 0
        assert await store.job_promote_due(conn, now=now + timedelta(seconds=10)) == 1
        assert await store.job_next_due(conn) == now + timedelta(seconds=20)
    assert await claim(db, store, clock) == [soon]


def _delayed(new: Any, seconds: float) -> Any:
    return replace(new, delay_seconds=seconds)


async def test_rescue_closes_attempts_lost_and_a_hard_stop_gives_them_back(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    expired, stopped, ended = await insert(
        db, store, clock, new_job("e"), new_job("s"), new_job("x", retryable=False)
    )
    await claim(db, store, clock)
    async with db.transaction() as conn:
        assert await store.job_requeue(
            conn, job_id=stopped, attempt=1, now=clock.now(), reason="node 'n1' stopped"
        )
    clock.advance(31)
    async with db.transaction() as conn:
        rescued = await store.job_rescue_expired(conn, now=clock.now())
    assert rescued.requeued == [expired] and rescued.ended == [ended]
    assert rescued.endpoints == {"/echo": 2}
    assert await attempts(db, expired) == [(1, "n1", "lost", True)]
    assert await attempts(db, ended) == [(1, "n1", "lost", True)]
    assert await attempts(db, stopped) == [(1, "n1", "given_back", True)]


async def test_retry_starts_a_failed_job_over_and_leaves_others_alone(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    failed, done, queued = await insert(
        db, store, clock, new_job("f", max_attempts=1), new_job("d"), new_job("q")
    )
    await claim(db, store, clock, limit=2)
    error = Outcome(JobState.ERROR, status_map={"error_message": "no"})
    ok = Outcome(JobState.DONE)
    async with db.transaction() as conn:
        await store.job_finish_many(conn, [(failed, 1, error), (done, 1, ok)], clock.now())
        moved = await store.job_retry(conn, [failed, done, queued, 999], clock.now())
        again = await store.job_get(conn, failed)
    assert moved == {failed: "/echo"}
    assert again is not None and again.status is JobState.QUEUED and again.max_attempts == 2
    assert again.finished_at is None and again.status_map == {} and again.attempt == 1
    assert await claim(db, store, clock) == [failed, queued]
    assert [a[:3] for a in await attempts(db, failed)] == [(1, "n1", "error"), (2, "n1", None)]


async def test_the_engine_migration_keeps_jobs_and_their_ids(database_url: str) -> None:
    """Upgrading a database that holds jobs keeps every row, and ids are never handed out
    again, even those of deleted jobs (SQLite rebuilds the table to change its CHECK)."""
    db = Database(database_url, pool_size=1)
    clock = ManualClock()
    try:
        await downgrade_to(db, "0006")
        async with db.transaction() as conn:
            for n in range(3):
                await conn.execute(
                    sa.text(
                        "INSERT INTO jobs (job_tag, endpoint, request_encoding, request_text,"
                        " request_digest, options, status, status_map, created_at, updated_at)"
                        " VALUES (:tag, '/echo', 'json', '{}', 'd', '{}', 'queued', '{}',"
                        " :now, :now)"
                    ),
                    {"tag": f"old{n}", "now": clock.now().replace(tzinfo=None)},
                )
            await conn.execute(sa.text("DELETE FROM jobs WHERE job_tag = 'old2'"))
        await migrate_to_head(db)
        async with db.reading() as conn:
            rows = (await conn.execute(sa.select(jobs.c.job_id, jobs.c.priority))).all()
        assert sorted(rows) == [(1, 0), (2, 0)]
        [new_id] = await insert(db, db.jobs, clock, new_job("new"))
        assert new_id == 4  # not 3: that id belonged to a deleted job
        async with db.transaction() as conn:
            assert await db.jobs.job_active_counts(conn) == {
                JobState.SCHEDULED: 0,
                JobState.QUEUED: 3,
                JobState.RUNNING: 0,
            }
    finally:
        await db.dispose()
