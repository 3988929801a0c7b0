"""Concurrency limits in SQL (store/limits.py), on SQLite and PostgreSQL: named limits, the
limited claim's counts and fairness, and the plain claim leaving keyed jobs alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.limits import EndpointLimits
from jobstore.store import Database, JobStore
from jobstore.store.tables import job_attempts, jobs
from tests.support.factories import LEASE, claim, finish, insert, new_job

FREE = {"/echo": EndpointLimits(), "/sleep": EndpointLimits()}


def keyed(tag: str, key: str | None, *, endpoint: str = "/echo") -> object:
    return replace(new_job(tag, endpoint=endpoint), concurrency_key=key)


async def claim_limited(
    db: Database,
    clock: ManualClock,
    *,
    limit: int = 10,
    node: str = "n1",
    endpoints: dict[str, EndpointLimits] = FREE,
) -> list[int]:
    async with db.transaction() as conn:
        got = await db.limits.job_claim_limited(
            conn,
            node=node,
            endpoints=endpoints,
            limit=limit,
            now=clock.now(),
            lease_until=clock.now() + LEASE,
        )
    return [c.job_id for c in got.claimed]


async def test_named_limits_are_set_changed_listed_and_removed(db: Database, clock) -> None:
    async with db.transaction() as conn:
        await db.limits.limit_set(conn, "customer-1", 2, now=clock.now(), by="ops")
        await db.limits.limit_set(conn, "customer-1", 3, now=clock.now(), by=None)
        await db.limits.limit_set(conn, "a-first", 0, now=clock.now(), by=None)
    async with db.reading() as conn:
        listed = await db.limits.limit_list(conn)
        one = await db.limits.limit_get(conn, "customer-1")
    assert [(n.key, n.max_running) for n in listed] == [("a-first", 0), ("customer-1", 3)]
    assert one is not None and one.updated_by is None
    async with db.transaction() as conn:
        assert await db.limits.limit_delete(conn, "customer-1")
        assert not await db.limits.limit_delete(conn, "customer-1")
        assert await db.limits.limit_get(conn, "customer-1") is None


async def test_the_plain_claim_leaves_keyed_jobs_to_the_limited_one(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [plain] = await insert(db, store, clock, new_job("plain"))
    [with_key] = await insert(db, store, clock, keyed("with-key", "A"))  # type: ignore[arg-type]
    assert await claim(db, store, clock) == [plain]
    assert await claim(db, store, clock) == []
    assert await claim_limited(db, clock) == [with_key]
    async with db.reading() as conn:
        opened = (await conn.execute(sa.select(job_attempts.c.job_id, job_attempts.c.node))).all()
        row = (await conn.execute(sa.select(jobs).where(jobs.c.job_id == with_key))).one()
    assert sorted(opened) == [(plain, "n1"), (with_key, "n1")]  # the attempt opened
    assert (row.status, row.owner, row.attempt) == ("running", "n1", 1)


async def test_a_named_limit_holds_across_claims_and_frees_a_slot_when_a_job_ends(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *[keyed(f"a{n}", "A") for n in range(5)])  # type: ignore[misc]
    async with db.transaction() as conn:
        await db.limits.limit_set(conn, "A", 2, now=clock.now(), by=None)
    assert await claim_limited(db, clock, node="n1") == ids[:2]
    assert await claim_limited(db, clock, node="n2") == []  # another node: still full
    assert await finish(db, store, clock, ids[0], 1)
    assert await claim_limited(db, clock, node="n2") == [ids[2]]
    assert await claim_limited(db, clock, node="n3") == []


async def test_keys_are_served_fairly(db: Database, store: JobStore, clock: ManualClock) -> None:
    """1,000 queued jobs of key A, then 10 of key B: B starts in the first claim."""
    a_jobs = [keyed(f"a{n}", "A") for n in range(1000)]
    b_jobs = [keyed(f"b{n}", "B") for n in range(10)]
    a_ids = await insert(db, store, clock, *a_jobs)  # type: ignore[arg-type]
    b_ids = await insert(db, store, clock, *b_jobs)  # type: ignore[arg-type]
    first = await claim_limited(db, clock, limit=8)
    assert sorted(first) == sorted(a_ids[:4] + b_ids[:4])
    second = await claim_limited(db, clock, limit=8)
    assert sorted(second) == sorted(a_ids[4:8] + b_ids[4:8])


async def test_the_endpoint_limit_applies_per_key(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    per_key = {"/echo": EndpointLimits(concurrency_limit=1)}
    a = await insert(db, store, clock, *[keyed(f"a{n}", "A") for n in range(3)])  # type: ignore[misc]
    b = await insert(db, store, clock, *[keyed(f"b{n}", "B") for n in range(3)])  # type: ignore[misc]
    assert await claim_limited(db, clock, endpoints=per_key) == [a[0], b[0]]
    assert await claim_limited(db, clock, endpoints=per_key) == []


async def test_a_global_limit_caps_an_endpoint_with_or_without_keys(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    capped = {"/sleep": EndpointLimits(global_limit=3), "/echo": EndpointLimits()}
    free_ids = await insert(
        db, store, clock, *[new_job(f"s{n}", endpoint="/sleep") for n in range(4)]
    )
    keyed_ids = await insert(
        db,
        store,
        clock,
        *[keyed(f"k{n}", "K", endpoint="/sleep") for n in range(2)],  # type: ignore[misc]
    )
    # The plain claim is not given a capped endpoint (the executor leaves it out).
    assert await claim(db, store, clock, endpoints=("/echo",)) == []
    first = await claim_limited(db, clock, endpoints=capped)
    assert sorted(first) == sorted([free_ids[0], keyed_ids[0], free_ids[1]])
    assert await claim_limited(db, clock, endpoints=capped) == []


async def test_only_this_nodes_endpoints_are_claimed(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [other] = await insert(db, store, clock, keyed("o", "A", endpoint="/other"))  # type: ignore[arg-type]
    assert await claim_limited(db, clock) == []
    assert await claim_limited(db, clock, endpoints={"/other": EndpointLimits()}) == [other]


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_nothing_keyed_means_no_lock_and_no_claim(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    await insert(db, store, clock, new_job("plain"))
    async with db.transaction() as conn:
        got = await db.limits.job_claim_limited(
            conn, node="n1", endpoints=FREE, limit=5, now=clock.now(),
            lease_until=clock.now() + LEASE,
        )  # fmt: skip
    assert got.claimed == [] and not got.looked


async def test_a_lost_nodes_jobs_count_until_they_are_rescued(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    """A node died holding the key's two slots: no other node starts a third while those rows
    say running; once the rescue puts them back in the queue, another node runs them."""
    ids = await insert(db, store, clock, *[keyed(f"a{n}", "A") for n in range(3)])  # type: ignore[misc]
    async with db.transaction() as conn:
        await db.limits.limit_set(conn, "A", 2, now=clock.now(), by=None)
    assert await claim_limited(db, clock, node="dies") == ids[:2]
    clock.advance(LEASE.total_seconds() + 1)  # its leases ran out, nobody rescued them yet
    assert await claim_limited(db, clock, node="n2") == []
    async with db.transaction() as conn:
        rescued = await store.job_rescue_expired(conn, now=clock.now())
    assert sorted(rescued.requeued) == ids[:2]
    assert await claim_limited(db, clock, node="n2") == ids[:2]  # the oldest first, again 2
    assert await claim_limited(db, clock, node="n3") == []
