"""The claim of a node with a Kinetica upstream: its declared endpoints' jobs and the jobs run on
an upstream (`jobs.upstream` set), never those of endpoints only other nodes declare; on both
databases."""

from __future__ import annotations

from dataclasses import replace

from jobstore.domain.clock import ManualClock
from jobstore.store import Database, JobStore
from tests.support.factories import LEASE, insert, new_job

UPSTREAM = "kinetica-upstream"


async def claim_with_upstream(
    db: Database, store: JobStore, clock: ManualClock, declared: list[str], limit: int = 10
) -> list[int]:
    async with db.transaction() as conn:
        claimed = await store.job_claim(
            conn,
            node="n1",
            endpoints=declared,
            limit=limit,
            now=clock.now(),
            lease_until=clock.now() + LEASE,
            with_upstream=True,
        )
    return [c.job_id for c in claimed]


async def test_it_takes_upstream_jobs_and_its_own_but_not_other_nodes_endpoints(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    alter, echo, _resize, show = await insert(
        db,
        store,
        clock,
        replace(new_job("a", endpoint="/alter/table"), upstream=UPSTREAM),
        new_job("e", endpoint="/echo"),
        new_job("r", endpoint="/resize/image"),  # declared on another node only
        replace(new_job("s", endpoint="/show/table"), upstream=UPSTREAM),
    )
    assert await claim_with_upstream(db, store, clock, ["/echo"]) == [alter, echo, show]
    assert await claim_with_upstream(db, store, clock, ["/echo"]) == []


async def test_it_leaves_keyed_jobs_and_keeps_its_limit_and_order(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    keyed = replace(new_job("k", endpoint="/echo"), concurrency_key="tenant-1")
    urgent = replace(new_job("u", endpoint="/show/table"), priority=5, upstream=UPSTREAM)
    first, _keyed, high = await insert(
        db, store, clock, replace(new_job("f", endpoint="/alter/table"), upstream=UPSTREAM),
        keyed, urgent,
    )  # fmt: skip
    assert await claim_with_upstream(db, store, clock, ["/echo"], limit=1) == [high]
    assert await claim_with_upstream(db, store, clock, ["/echo"], limit=5) == [first]
