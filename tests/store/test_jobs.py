"""The job store conformance suite: every SQL behaviour of `db.jobs`, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from jobstore.core.jobs import request_digest
from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, JobState, NewJob, Outcome, Payload
from jobstore.store import Database, JobStore
from jobstore.store.tables import job_tombstones, jobs
from tests.support.factories import LEASE, claim, finish, get, insert, new_job

# -- insert and read ------------------------------------------------------------------------


async def test_insert_and_get(db: Database, store: JobStore, clock: ManualClock) -> None:
    [job_id] = await insert(db, store, clock, new_job("t1"))
    job = await get(db, store, job_id)
    assert job is not None
    assert (job.job_tag, job.endpoint, job.status) == ("t1", "/echo", JobState.QUEUED)
    assert job.request == Payload(Encoding.JSON, text='{"a": 1}')
    assert job.progress == 0 and job.attempt == 0 and job.status_map == {}
    assert job.created_at == clock.now()
    async with db.reading() as conn:
        by_tag = await store.job_get_by_tag(conn, "t1")
        assert by_tag is not None and by_tag.job_id == job_id
        assert await store.job_get(conn, job_id + 100) is None
        assert await store.job_get_by_tag(conn, "nope") is None


async def test_binary_payload_round_trips(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    data = bytes(range(256))
    payload = Payload(Encoding.BINARY, data=data)
    new = NewJob("bin", "/echo", payload, request_digest("/echo", payload), {}, False, True, 3)
    [job_id] = await insert(db, store, clock, new)
    job = await get(db, store, job_id)
    assert job is not None and job.request_data == data and job.request_text is None


async def test_ids_are_never_reused_after_delete(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    first, second = await insert(db, store, clock, new_job("a"), new_job("b"))
    async with db.transaction() as conn:
        await conn.execute(sa.delete(jobs))
    [third] = await insert(db, store, clock, new_job("c"))
    assert first < second < third


# -- claim -----------------------------------------------------------------------------------


async def test_claim_takes_oldest_first_and_sets_lease(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *(new_job(f"t{i}") for i in range(5)))
    assert await claim(db, store, clock, limit=2) == ids[:2]
    job = await get(db, store, ids[0])
    assert job is not None
    assert job.status is JobState.RUNNING and job.owner == "n1" and job.attempt == 1
    assert job.lease_expires_at == clock.now() + LEASE and job.started_at == clock.now()
    assert await claim(db, store, clock, limit=10) == ids[2:]
    assert await claim(db, store, clock) == []


async def test_claim_only_takes_endpoints_the_node_knows(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    echo, custom = await insert(db, store, clock, new_job("e"), new_job("c", endpoint="/custom"))
    assert await claim(db, store, clock, endpoints=("/echo",)) == [echo]
    assert await claim(db, store, clock, endpoints=("/custom",)) == [custom]


async def test_concurrent_claims_never_share_a_job(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *(new_job(f"t{i}") for i in range(40)))
    results = await asyncio.gather(
        *(claim(db, store, clock, node=f"n{i}", limit=7) for i in range(4))
    )
    claimed = [job_id for batch in results for job_id in batch]
    assert len(claimed) == len(set(claimed)) == 28
    assert set(claimed) <= set(ids)


async def test_a_claim_is_one_statement_that_reads_the_queue_index(
    db: Database, store: JobStore, clock: ManualClock, dialect: str
) -> None:
    """One UPDATE ... RETURNING per claim, which also opens the attempts (a data-modifying
    WITH on PostgreSQL, a trigger on SQLite); on SQLite its subquery names ix_jobs_queued
    (PostgreSQL plans are checked in tests/store/test_explain.py)."""
    ids = await insert(db, store, clock, *(new_job(f"t{i}") for i in range(3)))
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            sent.append((statement, params))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await claim(db, store, clock, limit=2) == ids[:2]
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    [(statement, params)] = sent
    assert statement.lstrip().startswith(("UPDATE", "WITH"))
    if dialect == "sqlite":
        async with db.reading() as conn:
            plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            details = [row[-1] for row in plan.all()]
        assert any("USING INDEX ix_jobs_queued" in d for d in details), details
        assert not any("TEMP B-TREE" in d for d in details), details


# -- fencing ---------------------------------------------------------------------------------


async def test_finish_records_once_and_is_fenced_by_attempt(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    assert not await finish(db, store, clock, job_id, attempt=2)  # a stale or future attempt
    assert await finish(db, store, clock, job_id, attempt=1)
    assert not await finish(db, store, clock, job_id, attempt=1)  # never twice
    job = await get(db, store, job_id)
    assert job is not None
    assert job.status is JobState.DONE and job.progress == 100
    assert job.response_encoding is Encoding.JSON and job.response_text == '{"ok": true}'
    assert job.owner == "n1" and job.lease_expires_at is None and job.finished_at == clock.now()


async def test_progress_is_fenced(db: Database, store: JobStore, clock: ManualClock) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    async with db.transaction() as conn:
        assert await store.job_progress(
            conn, job_id=job_id, attempt=1, progress=40, now=clock.now()
        )
        assert not await store.job_progress(
            conn, job_id=job_id, attempt=0, progress=90, now=clock.now()
        )
        assert await store.job_progress(
            conn, job_id=job_id, attempt=1, progress=250, now=clock.now()
        )
    job = await get(db, store, job_id)
    assert job is not None and job.progress == 100


async def test_error_outcome_keeps_message(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    assert await finish(
        db, store, clock, job_id, 1, status=JobState.ERROR, status_map={"error_message": "boom"}
    )
    job = await get(db, store, job_id)
    assert job is not None and job.status is JobState.ERROR
    assert job.status_map == {"error_message": "boom"} and job.response_text is None


# -- leases and rescue -------------------------------------------------------------------------


async def test_lease_renew_extends_and_reports_cancel_flags(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    a, b, c = await insert(db, store, clock, new_job("a"), new_job("b"), new_job("c"))
    await claim(db, store, clock, node="n1", limit=2)
    await claim(db, store, clock, node="n2")
    async with db.transaction() as conn:
        await store.job_cancel(conn, [b], clock.now())
    clock.advance(10)
    async with db.transaction() as conn:
        held = await store.job_lease_renew(
            conn,
            node="n1",
            held=[(a, 1), (b, 1), (c, 1)],
            now=clock.now(),
            lease_until=clock.now() + LEASE,
        )
    assert {(h.job_id, h.cancel_requested) for h in held} == {(a, False), (b, True)}
    job_a, job_c = await get(db, store, a), await get(db, store, c)
    assert job_a is not None and job_a.lease_expires_at == clock.now() + LEASE
    assert (
        job_c is not None and job_c.lease_expires_at == clock.now() - timedelta(seconds=10) + LEASE
    )


async def test_lease_renew_ignores_an_older_attempt(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock, node="n1")
    clock.advance(31)
    async with db.transaction() as conn:
        await store.job_rescue_expired(conn, now=clock.now())
    await claim(db, store, clock, node="n1")  # the same node claims it again: attempt 2
    async with db.transaction() as conn:
        stale = await store.job_lease_renew(
            conn, node="n1", held=[(job_id, 1)], now=clock.now(), lease_until=clock.now() + LEASE
        )
        fresh = await store.job_lease_renew(
            conn, node="n1", held=[(job_id, 2)], now=clock.now(), lease_until=clock.now() + LEASE
        )
    assert stale == [] and [h.job_id for h in fresh] == [job_id]


async def test_requeued_job_starts_over(db: Database, store: JobStore, clock: ManualClock) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    async with db.transaction() as conn:
        await store.job_progress(conn, job_id=job_id, attempt=1, progress=60, now=clock.now())
    clock.advance(31)
    async with db.transaction() as conn:
        await store.job_rescue_expired(conn, now=clock.now())
    job = await get(db, store, job_id)
    assert job is not None
    assert (job.status, job.progress, job.started_at, job.owner) == (JobState.QUEUED, 0, None, None)


async def test_finished_jobs_keep_the_node_that_ran_them(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock, node="node-7")
    assert await finish(db, store, clock, job_id, 1)
    job = await get(db, store, job_id)
    assert job is not None and job.owner == "node-7" and job.lease_expires_at is None


async def test_rescue_requeues_expired_retryable_jobs(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    async with db.transaction() as conn:
        assert (await store.job_rescue_expired(conn, now=clock.now())).total == 0
    clock.advance(31)
    async with db.transaction() as conn:
        result = await store.job_rescue_expired(conn, now=clock.now())
    assert result.requeued == [job_id] and result.ended == []
    job = await get(db, store, job_id)
    assert job is not None and job.status is JobState.QUEUED and job.owner is None
    assert await claim(db, store, clock, node="n2") == [job_id]
    assert not await finish(db, store, clock, job_id, attempt=1)  # the dead node's attempt
    assert await finish(db, store, clock, job_id, attempt=2)


async def test_rescue_ends_non_retryable_and_exhausted_jobs(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    once, tired = await insert(
        db, store, clock, new_job("once", retryable=False), new_job("tired", max_attempts=1)
    )
    await claim(db, store, clock)
    clock.advance(31)
    async with db.transaction() as conn:
        result = await store.job_rescue_expired(conn, now=clock.now())
    assert result.requeued == [] and result.ended == [once, tired]
    for job_id in (once, tired):
        job = await get(db, store, job_id)
        assert job is not None and job.status is JobState.ERROR
        assert "executor running this job was lost" in job.status_map["error_message"]


async def test_rescue_owned_takes_back_a_restarted_nodes_jobs(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    mine, once, other = await insert(
        db, store, clock, new_job("m"), new_job("o", retryable=False), new_job("x")
    )
    await claim(db, store, clock, node="n1", limit=2)
    await claim(db, store, clock, node="n2")
    async with db.transaction() as conn:
        result = await store.job_rescue_owned(conn, node="n1", now=clock.now())
    assert result.requeued == [mine] and result.ended == [once]
    ended = await get(db, store, once)
    assert ended is not None and "restarted" in ended.status_map["error_message"]
    untouched = await get(db, store, other)
    assert untouched is not None and untouched.status is JobState.RUNNING


async def test_requeue_on_stop_is_fenced(db: Database, store: JobStore, clock: ManualClock) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    async with db.transaction() as conn:
        assert not await store.job_requeue(
            conn, job_id=job_id, attempt=5, now=clock.now(), reason="x"
        )
        assert await store.job_requeue(conn, job_id=job_id, attempt=1, now=clock.now(), reason="x")
    job = await get(db, store, job_id)
    assert job is not None and job.status is JobState.QUEUED and job.attempt == 1


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_each_kind_of_job(db: Database, store: JobStore, clock: ManualClock) -> None:
    running, done, queued = await insert(db, store, clock, new_job("r"), new_job("d"), new_job("q"))
    assert await claim(db, store, clock, limit=2) == [running, done]
    assert await finish(db, store, clock, done, 1)
    async with db.transaction() as conn:
        result = await store.job_cancel(conn, [queued, running, done, 999], clock.now())
    assert result == {
        queued: "cancelled",
        running: "cancel_requested",
        done: "already_done",
        999: "not_found",
    }
    cancelled = await get(db, store, queued)
    assert cancelled is not None and cancelled.status is JobState.CANCELLED
    assert await claim(db, store, clock) == []  # a cancelled job never starts


async def test_a_job_with_a_cancel_request_always_ends_cancelled(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("t"))
    await claim(db, store, clock)
    async with db.transaction() as conn:
        await store.job_cancel(conn, [job_id], clock.now())
    assert await finish(db, store, clock, job_id, 1)  # the handler returned a result anyway
    job = await get(db, store, job_id)
    assert job is not None and job.status is JobState.CANCELLED
    assert job.response_text is None and job.status_map["error_message"] == "cancelled on request"


# -- remove_job_on_complete -------------------------------------------------------------------


async def test_remove_on_complete_leaves_a_tombstone(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [job_id] = await insert(db, store, clock, new_job("gone", remove=True))
    await claim(db, store, clock)
    assert await finish(db, store, clock, job_id, 1)
    assert await get(db, store, job_id) is None
    async with db.reading() as conn:
        stone = await store.tombstone_get(conn, job_id)
        by_tag = await store.tombstone_get_by_tag(conn, "gone")
        count = (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar()
    assert stone is not None and stone == by_tag
    assert (stone.job_tag, stone.status, stone.finished_at) == ("gone", JobState.DONE, clock.now())
    assert count == 0


async def test_remove_on_complete_applies_to_cancel_and_rescue(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    queued, lost = await insert(
        db, store, clock, new_job("q", remove=True), new_job("l", remove=True, retryable=False)
    )
    async with db.transaction() as conn:
        await store.job_cancel(conn, [queued], clock.now())
    await claim(db, store, clock)
    clock.advance(60)
    async with db.transaction() as conn:
        await store.job_rescue_expired(conn, now=clock.now())
    async with db.reading() as conn:
        stones = (
            await conn.execute(sa.select(job_tombstones.c.job_id, job_tombstones.c.status))
        ).all()
    assert sorted(stones) == [(queued, "cancelled"), (lost, "error")]


# -- listing ---------------------------------------------------------------------------------


async def test_list_is_newest_first_without_payloads(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    ids = await insert(db, store, clock, *(new_job(f"t{i}") for i in range(4)))
    await claim(db, store, clock, limit=1)
    async with db.reading() as conn:
        everything = await store.job_list(conn, states=None, limit=10)
        active = await store.job_list(conn, states=[JobState.RUNNING], limit=10)
        two = await store.job_list(conn, states=None, limit=2)
    assert [j.job_id for j in everything] == ids[::-1]
    assert everything[0].request_text is None  # payloads stay on disk
    assert [j.job_id for j in active] == [ids[0]]
    assert [j.job_id for j in two] == ids[:1:-1][:2]


async def test_create_many_answers_each_job_of_a_mixed_batch(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    [live] = await insert(db, store, clock, new_job("live"))
    [gone] = await insert(db, store, clock, new_job("gone", remove=True))
    await claim(db, store, clock)
    assert await finish(db, store, clock, gone, 1)  # removed: only its tombstone holds "gone"
    batch = [
        new_job("fresh"),
        new_job("twice", text="[1]"),
        new_job("twice", text="[2]"),  # loses to the one before it, in the same batch
        new_job("live", text="[3]"),
        new_job("gone"),
    ]
    async with db.transaction() as conn:
        answers = await store.job_create_many(conn, batch, clock.now())
    fresh, twice_1, twice_2, again_live, again_gone = answers
    assert fresh.created and twice_1.created
    assert not twice_2.created and twice_2.job_id == twice_1.job_id
    assert twice_2.existing_digest == batch[1].request_digest
    assert not again_live.created and again_live.job_id == live
    assert not again_gone.created and again_gone.job_id == gone
    assert again_gone.existing_digest == batch[4].request_digest
    async with db.reading() as conn:
        tags = sorted((await conn.execute(sa.select(jobs.c.job_tag))).scalars())
    assert tags == ["fresh", "live", "twice"]


async def test_finish_many_records_a_mixed_batch_in_one_statement(
    db: Database, store: JobStore, clock: ManualClock
) -> None:
    done, failed, stale, cancelled, removed = await insert(
        db,
        store,
        clock,
        new_job("done"),
        new_job("failed"),
        new_job("stale"),
        new_job("cancelled"),
        new_job("removed", remove=True),
    )
    await claim(db, store, clock)
    async with db.transaction() as conn:
        await store.job_cancel(conn, [cancelled], clock.now())
    answer = Payload(Encoding.BINARY, data=b"\x00\xffbytes")
    outcomes = [
        (done, 1, Outcome(JobState.DONE, answer, {"rows": "3"})),
        (failed, 1, Outcome(JobState.ERROR, None, {"error_message": "boom"})),
        (stale, 7, Outcome(JobState.DONE, answer)),  # not the attempt that holds the job
        (cancelled, 1, Outcome(JobState.DONE, answer)),
        (removed, 1, Outcome(JobState.DONE, Payload(Encoding.JSON, text="[]"))),
    ]
    async with db.transaction() as conn:
        held = await store.job_finish_many(conn, outcomes, clock.now())
    assert held == [True, True, False, True, True]
    rows = {i: await get(db, store, i) for i in (done, failed, stale, cancelled, removed)}
    ok, bad, untouched, stopped = rows[done], rows[failed], rows[stale], rows[cancelled]
    assert ok is not None and (ok.status, ok.progress, ok.response_data) == (
        JobState.DONE,
        100,
        b"\x00\xffbytes",
    )
    assert ok.status_map == {"rows": "3"} and ok.response_encoding is Encoding.BINARY
    assert bad is not None and bad.status is JobState.ERROR
    assert bad.status_map == {"error_message": "boom"} and bad.response_data is None
    assert untouched is not None and untouched.status is JobState.RUNNING
    assert stopped is not None and stopped.status is JobState.CANCELLED
    assert stopped.response_data is None
    assert rows[removed] is None  # deleted in the same transaction, tombstone left
    async with db.reading() as conn:
        stone = await store.tombstone_get(conn, removed)
    assert stone is not None and stone.status is JobState.DONE
