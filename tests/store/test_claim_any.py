"""The claim of a node that runs endpoints nobody declared (a Kinetica upstream): any queued
job but those of the endpoints it names, on both databases."""

from __future__ import annotations

from dataclasses import replace

from jobstore.domain.clock import ManualClock
from jobstore.store import Database, JobStore
from tests.support.factories import LEASE, insert, new_job


async def claim_any(
    db: Database, store: JobStore, clock: ManualClock, but: list[str], limit: int = 10
) -> list[int]:
    async with db.transaction() as conn:
        claimed = await store.job_claim(
            conn,
            node="n1",
            endpoints=but,
            limit=limit,
            now=clock.now(),
            lease_until=clock.now() + LEASE,
            any_but=True,
        )
    return [c.job_id for c in claimed]


async def test_it_takes_every_endpoint_but_those_it_leaves(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    alter, capped, show = await insert(
        db,
        store,
        clock,
        new_job("a", endpoint="/alter/table"),
        new_job("b", endpoint="/capped"),
        new_job("c", endpoint="/show/table"),
    )
    assert await claim_any(db, store, clock, ["/capped"]) == [alter, show]
    assert await claim_any(db, store, clock, []) == [capped]  # nothing left out: all of them


async def test_it_leaves_keyed_jobs_and_keeps_its_limit_and_order(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    keyed = replace(new_job("k", endpoint="/alter/table"), concurrency_key="tenant-1")
    urgent = replace(new_job("u", endpoint="/show/table"), priority=5)
    first, _keyed, high = await insert(
        db, store, clock, new_job("f", endpoint="/alter/table"), keyed, urgent
    )
    assert await claim_any(db, store, clock, [], limit=1) == [high]
    assert await claim_any(db, store, clock, [], limit=5) == [first]  # not the keyed one
