"""Listing, capped counts and retention deletes in the job store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.models import JobQuery, JobState
from jobstore.store import Database, JobStore
from jobstore.store.tables import jobs
from tests.support.factories import DAY, count, end, insert, new_job

# -- listing ---------------------------------------------------------------------------------


async def test_search_filters_and_keyset_pages(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = []
    for i in range(7):
        endpoint = "/sleep" if i % 2 else "/echo"
        ids += await insert(db, store, clock, new_job(f"s{i}", endpoint=endpoint))
        clock.advance(60)
    async with db.reading() as conn:
        page1 = await store.job_search(conn, JobQuery(), limit=3)
        page2 = await store.job_search(conn, JobQuery(before_id=page1[-1].job_id), limit=3)
        page3 = await store.job_search(conn, JobQuery(before_id=page2[-1].job_id), limit=3)
        sleeps = await store.job_search(conn, JobQuery(endpoint="/sleep"), limit=10)
        by_tag = await store.job_search(conn, JobQuery(tag="s4"), limit=10)
        window = await store.job_search(
            conn,
            JobQuery(
                created_after=ManualClock().now() + timedelta(minutes=2),
                created_before=ManualClock().now() + timedelta(minutes=4),
            ),
            limit=10,
        )
    seen = [j.job_id for j in page1 + page2 + page3]
    assert seen == sorted(ids, reverse=True)  # newest first, no gap, no repeat
    assert [j.job_id for j in sleeps] == [ids[5], ids[3], ids[1]]
    assert [j.job_tag for j in by_tag] == ["s4"]
    assert [j.job_tag for j in window] == ["s3", "s2"]  # after is inclusive, before is not
    assert all(j.request_text is None for j in page1)  # listings leave payloads on disk


async def test_search_by_state_and_owner(db: Database, store: JobStore, clock: ManualClock) -> None:
    [a, b, c] = await insert(db, store, clock, new_job("a"), new_job("b"), new_job("c"))
    await end(db, store, clock, [a], JobState.ERROR)
    async with db.transaction() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.job_id == c).values(created_by="ann"))
        errors = await store.job_search(conn, JobQuery(states=(JobState.ERROR,)), limit=5)
        active = await store.job_search(
            conn, JobQuery(states=(JobState.QUEUED, JobState.RUNNING)), limit=5
        )
        anns = await store.job_search(conn, JobQuery(created_by="ann"), limit=5)
    assert [j.job_id for j in errors] == [a]
    assert [j.job_id for j in active] == [c, b]
    assert [j.job_id for j in anns] == [c]


async def test_status_counts_are_capped(db: Database, store: JobStore, clock: ManualClock) -> None:
    ids = await insert(db, store, clock, *(new_job(f"c{i}") for i in range(6)))
    await end(db, store, clock, ids[:4], JobState.DONE)
    async with db.transaction() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.job_id == ids[5]).values(created_by="u"))
        exact = await store.job_status_counts(conn, cap=100)
        capped = await store.job_status_counts(conn, cap=2)
        mine = await store.job_status_counts(conn, cap=100, created_by="u")
        active = await store.job_active_counts(conn)
    assert exact == {
        JobState.SCHEDULED: 0,
        JobState.QUEUED: 2,
        JobState.RUNNING: 0,
        JobState.DONE: 4,
        JobState.ERROR: 0,
        JobState.CANCELLED: 0,
    }
    assert capped[JobState.DONE] == 3  # cap + 1: "more than 2"
    assert capped[JobState.QUEUED] == 2
    assert mine[JobState.QUEUED] == 1 and sum(mine.values()) == 1
    assert active == {JobState.SCHEDULED: 0, JobState.QUEUED: 2, JobState.RUNNING: 0}


# -- retention -------------------------------------------------------------------------------


async def test_prune_deletes_only_old_jobs_of_the_state(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    old_done, old_error = await insert(db, store, clock, new_job("od"), new_job("oe"))
    await end(db, store, clock, [old_done], JobState.DONE)
    await end(db, store, clock, [old_error], JobState.ERROR)
    clock.advance(10 * DAY)
    [new_done, _queued] = await insert(db, store, clock, new_job("nd"), new_job("q"))
    await end(db, store, clock, [new_done], JobState.DONE)
    async with db.transaction() as conn:
        n = await store.job_prune(
            conn, JobState.DONE, finished_before=clock.now() - timedelta(days=7), limit=100
        )
        left = {j.job_tag for j in await store.job_search(conn, JobQuery(), limit=10)}
    assert n == 1
    assert left == {"oe", "nd", "q"}
    with pytest.raises(ValueError, match="only finished"):
        async with db.transaction() as conn:
            await store.job_prune(conn, JobState.QUEUED, finished_before=clock.now(), limit=1)


async def test_prune_batches_are_bounded(db: Database, store: JobStore, clock: ManualClock) -> None:
    ids = await insert(db, store, clock, *(new_job(f"b{i}") for i in range(5)))
    await end(db, store, clock, ids, JobState.CANCELLED)
    clock.advance(DAY)
    async with db.transaction() as conn:
        first = await store.job_prune(
            conn, JobState.CANCELLED, finished_before=clock.now(), limit=2
        )
    assert first == 2 and await count(db, jobs) == 3
