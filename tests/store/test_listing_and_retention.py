"""Listing, capped counts and retention: store queries and the pruner, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.durations import format_duration, parse_duration
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import JobQuery, JobState, Outcome
from jobstore.executor.pruner import Pruner, PrunerConfig
from jobstore.store import Database, JobStore
from jobstore.store.tables import cdm_submissions, job_tombstones, jobs
from tests.test_store import claim, insert, new_job

DAY = 86400.0


async def end(
    db: Database, store: JobStore, clock: ManualClock, job_ids: list[int], state: JobState
) -> None:
    """Claim and finish `job_ids` (they must be the oldest queued) in `state`."""
    claimed = await claim(db, store, clock, limit=len(job_ids))
    assert sorted(claimed) == sorted(job_ids)
    async with db.transaction() as conn:
        done = await store.job_finish_many(
            conn, [(i, 1, Outcome(state)) for i in job_ids], clock.now()
        )
    assert all(done)


async def count(db: Database, table: sa.Table) -> int:
    async with db.reading() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# -- listing --------------------------------------------------------------------------------


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
        JobState.QUEUED: 2,
        JobState.RUNNING: 0,
        JobState.DONE: 4,
        JobState.ERROR: 0,
        JobState.CANCELLED: 0,
    }
    assert capped[JobState.DONE] == 3  # cap + 1: "more than 2"
    assert capped[JobState.QUEUED] == 2
    assert mine[JobState.QUEUED] == 1 and sum(mine.values()) == 1
    assert active == {JobState.QUEUED: 2, JobState.RUNNING: 0}


# -- retention ------------------------------------------------------------------------------


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


async def test_prune_takes_tombstones_and_cdm_submissions(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [removed] = await insert(db, store, clock, new_job("gone", remove=True))
    [kept] = await insert(db, store, clock, new_job("kept"))
    await end(db, store, clock, [removed, kept], JobState.DONE)
    async with db.transaction() as conn:
        await conn.execute(
            sa.insert(cdm_submissions),
            [
                {
                    "job_id": job_id,
                    "cdm_job_id": 1,
                    "project": "p",
                    "cluster_id": "c",
                    "job_name": "n",
                    "created_at": clock.now(),
                }
                for job_id in (removed, kept)
            ],
        )
    assert await count(db, job_tombstones) == 1
    clock.advance(2 * DAY)
    # The retention pass prunes the CDM submissions of the jobs it prunes (the job store
    # itself does not know CDM's table).
    pruner = Pruner(db, PrunerConfig(retention={JobState.DONE: timedelta(days=1)}), clock=clock)
    result = await pruner.run_once()
    assert result.deleted == {JobState.DONE: 2}  # one job row, one tombstone
    assert await count(db, jobs) == 0
    assert await count(db, job_tombstones) == 0
    assert await count(db, cdm_submissions) == 0


async def test_prune_batches_are_bounded(db: Database, store: JobStore, clock: ManualClock) -> None:
    ids = await insert(db, store, clock, *(new_job(f"b{i}") for i in range(5)))
    await end(db, store, clock, ids, JobState.CANCELLED)
    clock.advance(DAY)
    async with db.transaction() as conn:
        first = await store.job_prune(
            conn, JobState.CANCELLED, finished_before=clock.now(), limit=2
        )
    assert first == 2 and await count(db, jobs) == 3


async def test_pruner_run_once_applies_retention_per_state(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *(new_job(f"p{i}") for i in range(5)))
    await end(db, store, clock, ids[:3], JobState.DONE)
    await end(db, store, clock, ids[3:], JobState.ERROR)
    clock.advance(2 * DAY)
    config = PrunerConfig(
        retention={JobState.DONE: timedelta(days=1), JobState.ERROR: timedelta(days=30)},
        batch_size=2,  # three done jobs: two batches
    )
    pruner = Pruner(db, config, clock=clock)
    result = await pruner.run_once()
    assert result.deleted == {JobState.DONE: 3, JobState.ERROR: 0}
    assert not result.skipped and result.total == 3
    # An explicit retention (what `jobstore jobs prune --error 0s` sends) overrides the config.
    override = await pruner.run_once({JobState.ERROR: timedelta(0)})
    assert override.deleted == {JobState.ERROR: 2}
    assert await count(db, jobs) == 0


@pytest.mark.parametrize("dialect", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_one_pruner_at_a_time_on_postgres(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("x"))
    await end(db, store, clock, [job_id], JobState.DONE)
    clock.advance(DAY)
    pruner = Pruner(db, PrunerConfig(retention={JobState.DONE: timedelta(0)}), clock=clock)
    held = asyncio.Event()
    release = asyncio.Event()

    async def other_node() -> None:
        async with db.transaction() as conn:
            assert await store.maintenance_lock(conn, "jobstore-pruner")
            held.set()
            await release.wait()

    holder = asyncio.create_task(other_node())
    await held.wait()
    blocked = await pruner.run_once()
    release.set()
    await holder
    assert blocked.skipped and blocked.total == 0
    assert await count(db, jobs) == 1
    assert (await pruner.run_once()).deleted == {JobState.DONE: 1}


async def test_pruner_loop_runs_and_stops(db: Database, store: JobStore) -> None:
    clock = ManualClock()
    [job_id] = await insert(db, store, clock, new_job("loop"))
    await end(db, store, clock, [job_id], JobState.DONE)
    clock.advance(DAY)
    pruner = Pruner(
        db,
        PrunerConfig(retention={JobState.DONE: timedelta(hours=1)}, interval_seconds=0.05),
        clock=clock,
    )
    await pruner.start()
    try:
        for _ in range(100):
            if await count(db, jobs) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await pruner.stop()
    assert await count(db, jobs) == 0


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed is not None and parsed.total_seconds() == seconds


def test_parse_duration_forever_and_errors() -> None:
    assert parse_duration("forever") is None and parse_duration("") is None
    assert format_duration(None) == "forever"
    assert format_duration(timedelta(days=7)) == "1w"
    assert format_duration(timedelta(hours=36)) == "36h"
    for bad in ("7", "7 days", "-1d", "d", "1y", "999999999w"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_pruner_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="finished states"):
        PrunerConfig(retention={JobState.QUEUED: timedelta(days=1)})
    with pytest.raises(ConfigError, match="interval"):
        PrunerConfig(interval_seconds=0)
    with pytest.raises(ConfigError, match="batch"):
        PrunerConfig(batch_size=0)
    assert not PrunerConfig().enabled
