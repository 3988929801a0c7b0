"""Job rows for store-level tests: build `NewJob`s and drive them through the job store.

Each helper opens its own transaction, as the executor and the core do, so a test reads like
the sequence of commits it checks.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from jobstore.core.jobs import request_digest
from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, Job, JobState, NewJob, Outcome, Payload
from jobstore.store import Database, JobStore

LEASE = timedelta(seconds=30)
DAY = 86400.0  # seconds, for ManualClock.advance


def new_job(
    tag: str,
    *,
    endpoint: str = "/echo",
    text: str = '{"a": 1}',
    remove: bool = False,
    retryable: bool = True,
    max_attempts: int = 3,
) -> NewJob:
    payload = Payload(Encoding.JSON, text=text)
    return NewJob(
        job_tag=tag,
        endpoint=endpoint,
        request=payload,
        request_digest=request_digest(endpoint, payload),
        options={"job_tag": tag},
        remove_on_complete=remove,
        retryable=retryable,
        max_attempts=max_attempts,
    )


async def insert(db: Database, store: JobStore, clock: ManualClock, *jobs_: NewJob) -> list[int]:
    async with db.transaction() as conn:
        answers = await store.job_create_many(conn, list(jobs_), clock.now())
    assert all(a.created for a in answers)
    return [a.job_id for a in answers]


async def claim(
    db: Database,
    store: JobStore,
    clock: ManualClock,
    *,
    node: str = "n1",
    limit: int = 10,
    endpoints: tuple[str, ...] = ("/echo", "/sleep"),
) -> list[int]:
    async with db.transaction() as conn:
        claimed = await store.job_claim(
            conn,
            node=node,
            endpoints=endpoints,
            limit=limit,
            now=clock.now(),
            lease_until=clock.now() + LEASE,
        )
    return [c.job_id for c in claimed]


async def finish(
    db: Database, store: JobStore, clock: ManualClock, job_id: int, attempt: int, **kw: object
) -> bool:
    outcome = (
        Outcome(JobState.DONE, Payload(Encoding.JSON, text='{"ok": true}'), {})
        if not kw
        else Outcome(**kw)  # type: ignore[arg-type]
    )
    async with db.transaction() as conn:
        return await store.job_finish(
            conn, job_id=job_id, attempt=attempt, outcome=outcome, now=clock.now()
        )


async def get(db: Database, store: JobStore, job_id: int) -> Job | None:
    async with db.reading() as conn:
        return await store.job_get(conn, job_id)


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
    """The number of rows in `table`."""
    async with db.reading() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
