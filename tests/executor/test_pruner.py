"""The retention pass (executor/pruner.py) over a real database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import JobState
from jobstore.executor.pruner import Pruner, PrunerConfig
from jobstore.store import Database, JobStore
from jobstore.store.tables import cdm_submissions, job_tombstones, jobs
from tests.support.factories import DAY, count, end, insert, new_job
from tests.support.plans import Sent


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


async def test_a_batch_is_as_large_as_its_database_allows(
    db: Database, store: JobStore, clock: ManualClock, dialect: str
) -> None:
    """On SQLite a batch holds the only write lock, which creates and claims wait for: it
    deletes at most 100 jobs. PostgreSQL locks only the rows it deletes: 1,000 a batch."""
    ids = await insert(db, store, clock, *(new_job(f"b{i}") for i in range(250)))
    await end(db, store, clock, ids, JobState.DONE)
    clock.advance(DAY)
    pruner = Pruner(db, PrunerConfig(retention={JobState.DONE: timedelta(0)}), clock=clock)
    with Sent(db) as sent:
        assert (await pruner.run_once()).deleted == {JobState.DONE: 250}
    batches = [s for s, _ in sent.statements if s.lstrip().startswith("DELETE FROM jobs ")]
    assert len(batches) == (3 if dialect == "sqlite" else 1)
    assert await count(db, jobs) == 0


async def test_a_run_stops_at_its_share_and_the_next_run_goes_on(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *(new_job(f"s{i}") for i in range(7)))
    await end(db, store, clock, ids, JobState.DONE)
    clock.advance(DAY)
    keep = {JobState.DONE: timedelta(0)}
    pruner = Pruner(db, PrunerConfig(retention=keep, batch_size=2, max_per_run=3), clock=clock)
    assert (await pruner.run_once()).deleted == {JobState.DONE: 4}  # two batches cover 3
    assert (await pruner.run_once()).deleted == {JobState.DONE: 3}
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


def test_pruner_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="finished states"):
        PrunerConfig(retention={JobState.QUEUED: timedelta(days=1)})
    with pytest.raises(ConfigError, match="interval"):
        PrunerConfig(interval_seconds=0)
    with pytest.raises(ConfigError, match="batch"):
        PrunerConfig(batch_size=0)
    with pytest.raises(ConfigError, match="per run"):
        PrunerConfig(max_per_run=0)
    assert not PrunerConfig().enabled
