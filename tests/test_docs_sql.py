"""docs/sql.md runs as written: every ```sql block, on SQLite and on PostgreSQL.

The database is migrated to head and filled through the real store and executor (a retried
failure, an attempt lost with its node, a timeout, a retry from outside, a job given back at a
hard stop, a delayed job, a queued one), so the ready queries read rows of every kind.

A fence may name the one database its block is written for: ```sql postgresql or ```sql sqlite
(the page gives the other database's version next to it); such a block is skipped on the other
database. A block that shows one of jobstore's own statements with its `:name` parameters runs
with the values in PARAMETERS; a parameter missing there fails the test. Each block runs in a
transaction of its own that is rolled back, so a statement that writes changes nothing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jobstore.core.jobs import JobService
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import JobFailed
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, EndpointRegistry, default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database
from jobstore.store.tables import UTCDateTime
from tests.support.factories import claim

SQL_MD = Path(__file__).resolve().parent.parent / "docs" / "sql.md"
DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite"}  # fence word -> the `dialect` fixture
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```sql(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
HEADING = re.compile(r"^#+ (.*)$", re.M)
# Values for the `:name` parameters of jobstore's own statements shown on the page.
PARAMETERS: dict[str, Any] = {"cutoff": datetime(2026, 1, 1, tzinfo=UTC)}
PARAMETER_TYPES: dict[str, sa.types.TypeEngine[Any]] = {"cutoff": UTCDateTime()}

ATTEMPTS_OF_ONE_JOB = "Attempts of one job"
TIME_LOST = "Time lost to dead nodes"
LEASE = 30.0


@dataclass(frozen=True)
class Block:
    heading: str  # the nearest heading above the block
    only: str | None  # the one dialect the block is for, None: both
    sql: str
    line: int

    def __str__(self) -> str:
        return f"docs/sql.md:{self.line} ({self.heading})"


def sql_blocks() -> list[Block]:
    text = SQL_MD.read_text()
    found = []
    for match in FENCE.finditer(text):
        words = match.group("info").split()
        unknown = set(words) - DIALECTS.keys()
        line = text.count("\n", 0, match.start()) + 1
        assert not unknown, f"docs/sql.md:{line}: unknown fence words {sorted(unknown)}"
        assert len(words) <= 1, f"docs/sql.md:{line}: name one database or none"
        headings = HEADING.findall(text, 0, match.start())
        indent = len(match.group("indent"))
        body = "\n".join(row[indent:] for row in match.group("body").splitlines())
        only = DIALECTS[words[0]] if words else None
        found.append(Block(headings[-1] if headings else "", only, body, line))
    return found


def test_the_page_has_blocks_for_each_database() -> None:
    blocks = sql_blocks()
    assert len(blocks) >= 40
    for dialect in DIALECTS.values():
        assert any(b.only == dialect for b in blocks), dialect
    for heading in (ATTEMPTS_OF_ONE_JOB, TIME_LOST):
        assert any(b.heading == heading for b in blocks), heading


# -- the history the queries read --------------------------------------------------------------


class Flaky:
    """Fails the first attempt of each job, succeeds after."""

    async def handle(self, request: Any, ctx: JobContext) -> Any:
        if ctx.attempt == 1:
            raise JobFailed("flaky: first attempt")
        return {"attempt": ctx.attempt}


async def slow(request: Any, ctx: JobContext) -> Any:
    await ctx.sleep(30)


def registry() -> EndpointRegistry:
    endpoints = default_registry()
    endpoints.add(Endpoint("/flaky", Flaky().handle))
    endpoints.add(Endpoint("/slow", slow))
    return endpoints


async def seed(db: Database, clock: ManualClock) -> None:
    """Jobs with attempts of every outcome but `cancelled`, written by store and executor."""
    endpoints = registry()
    service = JobService(db, endpoints, clock=clock)
    executor = Executor(db, endpoints, ExecutorConfig(node_id="n1"), clock=clock)
    json_text = Payload(Encoding.JSON, text="{}")

    async def create(endpoint: str, tag: str, text: str = "{}", **options: str) -> int:
        payload = Payload(Encoding.JSON, text=text)
        return (await service.create_job(endpoint, payload, {"job_tag": tag, **options})).job_id

    try:
        # A failed first attempt, retried after its backoff; a second node that dies.
        await create("/flaky", "nightly-1", retry_errors="true", backoff_seconds="10")
        assert len(await executor.run_once()) == 1
        lost = await create("/echo", "lost-1")
        assert await claim(db, db.jobs, clock, node="dead-node", endpoints=("/echo",)) == [lost]
        clock.advance(2 * LEASE)
        assert (await executor.rescue_once()).requeued == [lost]
        assert await executor.scheduler.run_once() == 1
        assert len(await executor.run_once()) == 2
        # A failure without retries, a timeout, and the failure retried from outside.
        clock.advance(60)
        failed = await create("/fail", "fail-1", '{"message": "boom"}')
        await create("/slow", "slow-1", timeout_seconds="0.05")
        assert len(await executor.run_once()) == 2
        await service.retry_job(failed)
        assert await executor.run_once() == [failed]
        # A job given back at a hard stop; then a delayed job and a queued one.
        clock.advance(60)
        await create("/slow", "held-1")
        assert len(await executor.claim_once()) == 1
        await asyncio.sleep(0.05)
    finally:
        await executor.stop(wait_seconds=0)
    await service.create_job("/echo", json_text, {"job_tag": "later-1", "delay_seconds": "3600"})
    await service.create_job("/echo", json_text, {"job_tag": "urgent-1", "priority": "5"})
    states = {
        tag: (await service.get_job(tag=tag)).status
        for tag in ("nightly-1", "lost-1", "fail-1", "slow-1", "held-1", "later-1", "urgent-1")
    }
    assert states == {
        "nightly-1": JobState.DONE,
        "lost-1": JobState.DONE,
        "fail-1": JobState.ERROR,
        "slow-1": JobState.ERROR,
        "held-1": JobState.QUEUED,
        "later-1": JobState.SCHEDULED,
        "urgent-1": JobState.QUEUED,
    }


# -- running the page --------------------------------------------------------------------------


async def run(db: Database, block: Block) -> list[dict[str, Any]]:
    """The block's rows, in a transaction that is rolled back."""
    statement = sa.text(block.sql.strip().rstrip(";"))
    names = set(statement.compile().params)
    missing = names - PARAMETERS.keys()
    assert not missing, f"{block}: no test value for parameters {sorted(missing)}"
    statement = statement.bindparams(
        *(sa.bindparam(n, PARAMETERS[n], type_=PARAMETER_TYPES.get(n)) for n in sorted(names))
    )
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            result = await conn.execute(statement)
            return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await transaction.rollback()


async def test_every_query_runs(db: Database, dialect: str) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    await seed(db, clock)
    blocks = [b for b in sql_blocks() if b.only in (None, dialect)]
    answers: dict[str, list[list[dict[str, Any]]]] = {}
    failures = []
    for block in blocks:
        try:
            answers.setdefault(block.heading, []).append(await run(db, block))
        except Exception as exc:
            failures.append(f"{block}: {type(exc).__name__}: {exc}".splitlines()[0])
    assert not failures, "\n".join(failures)

    [attempts] = answers[ATTEMPTS_OF_ONE_JOB]
    assert [(a["attempt"], a["node"], a["outcome"]) for a in attempts] == [
        (1, "n1", "error"),
        (2, "n1", "done"),
    ]
    assert attempts[0]["error_message"] == "flaky: first attempt"
    assert attempts[1]["error_message"] is None
    assert all(a["started_at"] is not None and a["finished_at"] is not None for a in attempts)

    [lost] = answers[TIME_LOST]
    assert [(r["node"], r["attempts"]) for r in lost] == [("dead-node", 1)]
    assert float(lost[0]["lost_seconds"]) == 2 * LEASE
