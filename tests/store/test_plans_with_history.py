"""The executor's statements keep their plans when statistics describe a long history.

A job table is mostly finished jobs. When its statistics were taken while nothing waited
(ANALYZE, autovacuum's autoanalyze, SQLite's PRAGMA optimize) and a burst of jobs then
arrives, a planner that trusts them believes the queue empty. Each test below builds that
table with the store itself (finished jobs, ANALYZE, then a burst queued and claimed) and
checks the plan of one statement the executor sends on every claim, finish or rescue, on the
database where it went wrong: plans like these made a drain with a million finished jobs
four to nine times slower than with none (benchmarks/soak.py, history).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import SystemClock
from jobstore.domain.models import Encoding, JobState, Outcome, Payload
from jobstore.store import Database
from tests.support.databases import drop_pg_database, new_pg_database, opened
from tests.support.factories import LEASE, new_job
from tests.support.plans import explain, explain_sqlite, plan_nodes

FINISHED = 20_000
BURST = 500
BATCH = 1_000
ENDPOINTS = ["/echo"]
NOW = SystemClock().now()
DONE = Outcome(JobState.DONE, Payload(Encoding.JSON, text="{}"), {})


async def _history(db: Database) -> None:
    """FINISHED jobs created, claimed and finished; statistics; then BURST queued jobs."""
    store = db.jobs
    for start in range(0, FINISHED, BATCH):
        async with db.transaction() as conn:
            jobs = [new_job(f"old-{n}") for n in range(start, start + BATCH)]
            await store.job_create_many(conn, jobs, NOW)
            claimed = await store.job_claim(
                conn, node="n1", endpoints=ENDPOINTS, limit=BATCH, now=NOW, lease_until=NOW + LEASE
            )
            await store.job_finish_many(conn, [(c.job_id, c.attempt, DONE) for c in claimed], NOW)
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE"))
        await conn.commit()
    async with db.transaction() as conn:
        await store.job_create_many(conn, [new_job(f"new-{n}") for n in range(BURST)], NOW)


@pytest.fixture(scope="module")
def history_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One such database per dialect for the module (building it takes a few seconds)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("history") / "jobs.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = new_pg_database(template=request.getfixturevalue("pg_template"))

    async def build() -> None:
        async with opened(url) as db:
            await _history(db)

    try:
        asyncio.run(build())
        yield url
    finally:
        if request.param != "sqlite":
            drop_pg_database(url)


@pytest.fixture
async def history(history_url: str) -> AsyncIterator[Database]:
    async with opened(history_url) as db:
        yield db


async def _claim(db: Database, conn: Any, limit: int = 256) -> Any:
    return await db.jobs.job_claim(
        conn, node="n2", endpoints=ENDPOINTS, limit=limit, now=NOW, lease_until=NOW + LEASE
    )


@pytest.mark.postgres
@pytest.mark.parametrize("history_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
async def test_the_claim_moves_its_picks_through_the_primary_key(
    history: Database, generic: bool
) -> None:
    """The claim's UPDATE finds each picked job by its key, whatever the statistics say of
    the queue; it used to walk every queued job once per pick (a nested loop)."""
    statement, plan = await explain(history, lambda conn: _claim(history, conn), generic=generic)
    shown = json.dumps(plan, indent=1)
    on_jobs = [n for n in plan_nodes(plan) if n.get("Relation Name") == "jobs"]
    assert any(n.get("Index Name") == "pk_jobs" for n in on_jobs), f"{statement}\n{shown}"
    assert not [n for n in plan_nodes(plan) if "Join Filter" in n], f"{statement}\n{shown}"


@pytest.mark.parametrize("history_url", ["sqlite"], indirect=True)
async def test_the_finish_reads_only_the_rows_it_ends(history: Database) -> None:
    """No Bloom filter over jobs: SQLite builds one by reading the whole table."""
    async with history.transaction() as conn:
        claimed = await _claim(history, conn, limit=BURST)

    async def finish(conn: Any) -> object:
        return await history.jobs.job_finish_many(
            conn, [(c.job_id, c.attempt, DONE) for c in claimed], NOW
        )

    statement, plan = await explain_sqlite(history, finish)
    assert "SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)" in plan, (statement, plan)
    whole = [step for step in plan if "BLOOM" in step or step.startswith("SCAN jobs")]
    assert not whole, (statement, plan)


@pytest.mark.parametrize("history_url", ["sqlite", "postgres"], indirect=True)
async def test_the_rescue_looks_only_at_running_jobs(history: Database) -> None:
    async def rescue(conn: Any) -> object:  # nothing has expired: only the SELECT is sent
        return await history.jobs.job_rescue_expired(conn, now=NOW)

    if history.driver.can_listen:  # PostgreSQL
        statement, plan = await explain(history, rescue)
        indexes = {n.get("Index Name") for n in plan_nodes(plan)}
        assert "ix_jobs_running" in indexes, f"{statement}\n{json.dumps(plan, indent=1)}"
    else:
        statement, steps = await explain_sqlite(history, rescue)
        assert any("USING INDEX ix_jobs_running" in step for step in steps), steps
