"""The hot queries stay on their indexes (PostgreSQL).

The claim, the scheduler's two reads and the two lookups are taken from JobStore as the driver
receives them (captured on their way to the cursor, with their parameters), then EXPLAINed
against a table of 20,000 jobs that JobStore itself created, claimed and finished, with a few
hundred left in the queue and a few hundred scheduled for later. The claim is explained twice:
with its parameters (the custom plan) and as a prepared statement forced to the generic plan,
which is what a connection's statement cache runs after a few executions. A plan that drops the
index (a sequential scan, or a sort of the queue) fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import SystemClock
from jobstore.domain.models import Encoding, JobState, Outcome, Payload
from jobstore.store import Database
from jobstore.store import limits as limits_store
from tests.support.databases import drop_pg_database, new_pg_database, opened
from tests.support.factories import LEASE, new_job
from tests.support.plans import assert_uses, explain

pytestmark = pytest.mark.postgres

JOBS = 20_000
QUEUED = 300
KEYED = 400  # queued jobs with a concurrency key, over KEYS keys
KEYS = 40
SCHEDULED = 200
BATCH = 1_000
ENDPOINTS = ("/echo", "/sleep", "/fail")


async def _fill(db: Database) -> None:
    """20,000 jobs written by JobStore: all but QUEUED claimed and finished, then ANALYZE."""
    store = db.jobs
    now = SystemClock().now()
    for start in range(0, JOBS, BATCH):
        async with db.transaction() as conn:
            await store.job_create_many(
                conn,
                [
                    replace(new_job(f"explain-{n:06d}", text=json.dumps({"n": n})), priority=n % 3)
                    for n in range(start, start + BATCH)
                ],
                now,
            )
    done = Outcome(JobState.DONE, Payload(Encoding.JSON, text='{"n": 1}'), {})
    for _ in range((JOBS - QUEUED) // BATCH + 1):
        async with db.transaction() as conn:
            limit = min(BATCH, await _count_queued(conn) - QUEUED)
            if limit <= 0:
                break
            claimed = await store.job_claim(
                conn, node="n1", endpoints=ENDPOINTS, limit=limit, now=now, lease_until=now + LEASE
            )
            await store.job_finish_many(conn, [(c.job_id, c.attempt, done) for c in claimed], now)
    async with db.transaction() as conn:  # and some waiting for their time
        await store.job_create_many(
            conn,
            [replace(new_job(f"later-{n}"), delay_seconds=3600 + n) for n in range(SCHEDULED)],
            now,
        )
    async with db.transaction() as conn:  # and some with a concurrency key
        await store.job_create_many(
            conn,
            [replace(new_job(f"keyed-{n}"), concurrency_key=f"k{n % KEYS}") for n in range(KEYED)],
            now,
        )
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE jobs"))
        await conn.commit()
        assert await _count_queued(conn) == QUEUED + KEYED


@pytest.fixture(scope="module")
def filled_url(pg_template: str) -> Iterator[str]:
    """One filled database for the whole module (filling takes a few seconds)."""
    url = new_pg_database(template=pg_template)
    try:

        async def fill() -> None:
            async with opened(url) as db:
                await _fill(db)

        asyncio.run(fill())
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def filled(filled_url: str) -> AsyncIterator[Database]:
    async with opened(filled_url) as db:
        yield db


async def _count_queued(conn: Any) -> int:
    result = await conn.execute(sa.text("SELECT count(*) FROM jobs WHERE status = 'queued'"))
    return int(result.scalar_one())


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
async def test_claim_reads_the_queue_through_its_partial_index(
    filled: Database, generic: bool
) -> None:
    store = filled.jobs
    now = SystemClock().now()

    async def claim(conn: Any) -> object:
        return await store.job_claim(
            conn, node="n2", endpoints=ENDPOINTS, limit=8, now=now, lease_until=now + LEASE
        )

    statement, plan = await explain(filled, claim, generic=generic)
    assert_uses(plan, "ix_jobs_queued", statement)


async def test_due_jobs_are_found_through_the_scheduled_index(filled: Database) -> None:
    store = filled.jobs
    now = SystemClock().now()

    async def next_due(conn: Any) -> object:
        return await store.job_next_due(conn)

    async def due(conn: Any) -> object:  # nothing is due: only the SELECT is sent
        return await store.job_promote_due(conn, now=now)

    for call in (next_due, due):
        statement, plan = await explain(filled, call)
        assert_uses(plan, "ix_jobs_scheduled", statement)


async def test_lookup_by_tag_uses_the_unique_tag_index(filled: Database) -> None:
    store = filled.jobs

    async def by_tag(conn: Any) -> object:
        return await store.job_get_by_tag(conn, "explain-012345")

    statement, plan = await explain(filled, by_tag)
    assert_uses(plan, "uq_jobs_job_tag", statement)


async def test_lookup_by_id_uses_the_primary_key(filled: Database) -> None:
    store = filled.jobs

    async def by_id(conn: Any) -> object:
        return await store.job_get(conn, 12345)

    statement, plan = await explain(filled, by_id)
    assert_uses(plan, "pk_jobs", statement)


async def test_the_limited_claim_reads_keys_and_their_lines_through_the_keyed_index(
    filled: Database,
) -> None:
    """The keys of queued jobs (a loose index scan) and each key's first jobs (one index range
    per key) never read the whole queue."""
    endpoints = list(ENDPOINTS)

    async def keys(conn: Any) -> object:
        return await conn.execute(limits_store._QUEUED_KEYS, {"max_keys": limits_store.MAX_KEYS})

    async def lines(conn: Any) -> object:
        wants = [(f"k{n}", 4) for n in range(0, KEYS, 3)]
        return await filled.driver.queued_of_keys(conn, wants, endpoints)

    for call in (keys, lines):
        statement, plan = await explain(filled, call)
        assert_uses(plan, "ix_jobs_queued_keyed", statement)
