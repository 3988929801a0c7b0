"""The definitions store (store/cdm.py, `db.cdm`): CDM's named job definitions and their
submissions, each one a jobstore job, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobstore.domain.clock import ManualClock
from jobstore.domain.definitions import Definition, SubmissionRow
from jobstore.domain.models import Encoding, JobState, Outcome, Payload
from jobstore.store import Database, JobStore
from jobstore.store.cdm import CdmStore
from tests.support.factories import claim, finish, new_job

SPEC: dict[str, Any] = {
    "from-config-values": {"configs": [{"name": "fromJobConfig", "inputs": []}]},
    "to-link-name": "dws \u00e9t\u00e9",
    "retries": 3,
}


@pytest.fixture
def cdm(db: Database) -> CdmStore:
    return db.cdm


async def define(
    db: Database,
    cdm: CdmStore,
    clock: ManualClock,
    name: str,
    *,
    project: str = "p1",
    cluster: str = "c1",
    job_type: str = "NORMAL_JOB",
    definition: dict[str, Any] | None = None,
    user: str | None = "alice",
) -> bool:
    async with db.transaction() as conn:
        return await cdm.definition_insert(
            conn,
            project=project,
            cluster_id=cluster,
            name=name,
            job_type=job_type,
            definition=SPEC if definition is None else definition,
            user=user,
            now=clock.now(),
        )


async def lookup(
    db: Database, cdm: CdmStore, name: str, *, project: str = "p1", cluster: str = "c1"
) -> Definition | None:
    async with db.reading() as conn:
        return await cdm.definition_get(conn, project, cluster, name)


async def stored(
    db: Database, cdm: CdmStore, name: str, *, project: str = "p1", cluster: str = "c1"
) -> Definition:
    """A definition the test knows exists."""
    found = await lookup(db, cdm, name, project=project, cluster=cluster)
    assert found is not None, f"no definition {project}/{cluster}/{name}"
    return found


async def listing(
    db: Database,
    cdm: CdmStore,
    *,
    name_filter: str | None = None,
    job_type: str = "NORMAL_JOB",
    offset: int = 0,
    limit: int = 100,
    project: str = "p1",
    cluster: str = "c1",
) -> tuple[int, list[str]]:
    async with db.reading() as conn:
        total, found = await cdm.definition_list(
            conn,
            project,
            cluster,
            name_filter=name_filter,
            job_type=job_type,
            offset=offset,
            limit=limit,
        )
    return total, [d.name for d in found]


async def submit(
    db: Database,
    store: JobStore,
    cdm: CdmStore,
    clock: ManualClock,
    definition: Definition,
    tag: str,
    *,
    delete_after: bool = False,
    remove: bool = False,
    user: str | None = "alice",
) -> int:
    """One start of `definition`: a job and its submission row, in one transaction."""
    async with db.transaction() as conn:
        [answer] = await store.job_create_many(conn, [new_job(tag, remove=remove)], clock.now())
        await cdm.submission_insert(
            conn,
            job_id=answer.job_id,
            definition=definition,
            is_delete_job=delete_after,
            user=user,
            now=clock.now(),
        )
    return answer.job_id


async def history(
    db: Database, cdm: CdmStore, name: str, *, offset: int = 0, limit: int = 1, cluster: str = "c1"
) -> tuple[int, list[SubmissionRow]]:
    async with db.reading() as conn:
        return await cdm.submission_list(conn, "p1", cluster, name, offset=offset, limit=limit)


async def active(db: Database, cdm: CdmStore, name: str, *, cluster: str = "c1") -> int | None:
    async with db.reading() as conn:
        return await cdm.submission_active(conn, "p1", cluster, name)


# -- definitions --------------------------------------------------------------------------------


async def test_a_definition_is_stored_and_read_back_whole(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders", user="alice")
    found = await lookup(db, cdm, "orders")
    assert found is not None and isinstance(found.cdm_job_id, int)
    assert found == Definition(
        cdm_job_id=found.cdm_job_id,
        project="p1",
        cluster_id="c1",
        name="orders",
        job_type="NORMAL_JOB",
        definition=SPEC,
        created_by="alice",
        created_at=clock.now(),
        updated_by="alice",
        updated_at=clock.now(),
    )
    assert await lookup(db, cdm, "Orders") is None
    assert await lookup(db, cdm, "orders", cluster="c2") is None
    assert await lookup(db, cdm, "orders", project="p2") is None


async def test_a_name_is_taken_once_per_project_and_cluster(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    created = clock.now()
    assert await define(db, cdm, clock, "orders", definition={"v": 1})
    clock.advance(10)
    assert not await define(db, cdm, clock, "orders", definition={"v": 2}, user="bob")
    assert await define(db, cdm, clock, "orders", cluster="c2", definition={"v": 3})
    assert await define(db, cdm, clock, "orders", project="p2", definition={"v": 4})
    first = await stored(db, cdm, "orders")
    assert (first.definition, first.created_by, first.updated_at) == ({"v": 1}, "alice", created)
    other_cluster = await stored(db, cdm, "orders", cluster="c2")
    other_project = await stored(db, cdm, "orders", project="p2")
    assert other_cluster.definition == {"v": 3} and other_project.definition == {"v": 4}
    ids = {first.cdm_job_id, other_cluster.cdm_job_id, other_project.cdm_job_id}
    assert len(ids) == 3
    assert await listing(db, cdm) == (1, ["orders"])


async def test_list_filters_by_type_and_name_and_pages_in_name_order(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    for name in ("weeklyorders", "payments", "dailyorders", "monthlyorders", "orders2"):
        assert await define(db, cdm, clock, name)
    assert await define(db, cdm, clock, "batchorders", job_type="BATCH_JOB")
    assert await define(db, cdm, clock, "elsewhereorders", cluster="c2")
    assert await define(db, cdm, clock, "otherprojectorders", project="p2")

    everything = ["dailyorders", "monthlyorders", "orders2", "payments", "weeklyorders"]
    assert await listing(db, cdm) == (5, everything)
    assert await listing(db, cdm, name_filter="") == (5, everything)
    assert await listing(db, cdm, name_filter="ORDERS") == (4, everything[:3] + everything[4:])
    assert await listing(db, cdm, name_filter="eKlY") == (1, ["weeklyorders"])
    assert await listing(db, cdm, name_filter="nothing") == (0, [])
    assert await listing(db, cdm, job_type="BATCH_JOB") == (1, ["batchorders"])
    assert await listing(db, cdm, cluster="c2") == (1, ["elsewhereorders"])
    # Pages: the total counts every match, the page holds `limit` from `offset`.
    assert await listing(db, cdm, offset=0, limit=2) == (5, ["dailyorders", "monthlyorders"])
    assert await listing(db, cdm, offset=2, limit=2) == (5, ["orders2", "payments"])
    assert await listing(db, cdm, offset=4, limit=2) == (5, ["weeklyorders"])
    assert await listing(db, cdm, offset=5, limit=2) == (5, [])
    assert await listing(db, cdm, name_filter="orders", offset=1, limit=2) == (
        4,
        ["monthlyorders", "orders2"],
    )


@pytest.mark.parametrize(
    ("name_filter", "matches"),
    [
        ("a_b", ["xa_by"]),  # "_" is a character, not LIKE's any-one
        ("50%", ["rate50%"]),  # "%" is a character, not LIKE's anything
        ("\\", ["back\\slash"]),  # and the escape character itself
    ],
)
async def test_list_filter_is_a_plain_substring(
    db: Database, cdm: CdmStore, clock: ManualClock, name_filter: str, matches: list[str]
) -> None:
    for name in ("xa_by", "xacby", "rate50%", "rate500", "back\\slash", "backslash"):
        assert await define(db, cdm, clock, name)
    assert await listing(db, cdm, name_filter=name_filter) == (len(matches), matches)


async def test_update_replaces_type_body_and_updater_only_in_scope(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    created = clock.now()
    assert await define(db, cdm, clock, "orders", user="alice")
    assert await define(db, cdm, clock, "orders", cluster="c2", user="alice")
    clock.advance(3600)
    async with db.transaction() as conn:
        changed = await cdm.definition_update(
            conn,
            project="p1",
            cluster_id="c1",
            name="orders",
            job_type="BATCH_JOB",
            definition={"v": 2},
            user="bob",
            now=clock.now(),
        )
        missing = await cdm.definition_update(
            conn,
            project="p1",
            cluster_id="c1",
            name="returns",
            job_type="BATCH_JOB",
            definition={"v": 2},
            user="bob",
            now=clock.now(),
        )
    assert changed and not missing
    updated = await stored(db, cdm, "orders")
    assert (updated.job_type, updated.definition) == ("BATCH_JOB", {"v": 2})
    assert (updated.created_by, updated.created_at) == ("alice", created)
    assert (updated.updated_by, updated.updated_at) == ("bob", clock.now())
    untouched = await stored(db, cdm, "orders", cluster="c2")
    assert (untouched.job_type, untouched.definition) == ("NORMAL_JOB", SPEC)
    assert (untouched.updated_by, untouched.updated_at) == ("alice", created)
    assert await lookup(db, cdm, "returns") is None  # an update creates nothing


async def test_delete_removes_one_definition_once(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders")
    assert await define(db, cdm, clock, "orders", cluster="c2")
    async with db.transaction() as conn:
        assert await cdm.definition_delete(conn, "p1", "c1", "orders")
        assert not await cdm.definition_delete(conn, "p1", "c1", "orders")
        assert not await cdm.definition_delete(conn, "p2", "c2", "orders")
    assert await lookup(db, cdm, "orders") is None
    assert await lookup(db, cdm, "orders", cluster="c2") is not None
    assert await define(db, cdm, clock, "orders")  # the name is free again


async def test_a_locked_definition_waits_for_the_holder_to_commit(
    db: Database, cdm: CdmStore, clock: ManualClock
) -> None:
    """`lock=True` serialises two starts of one definition: the second reads it only after
    the first committed, and then sees what the first wrote. (PostgreSQL holds the row; on
    SQLite the one writer connection already does it, so there this cannot fail.)"""
    assert await define(db, cdm, clock, "orders", definition={"v": 1})
    holding = asyncio.Event()
    events: list[str] = []

    async def first() -> None:
        async with db.transaction() as conn:
            held = await cdm.definition_get(conn, "p1", "c1", "orders", lock=True)
            assert held is not None and held.definition == {"v": 1}
            holding.set()
            await asyncio.sleep(0.3)  # the second start is waiting now
            await cdm.definition_update(
                conn,
                project="p1",
                cluster_id="c1",
                name="orders",
                job_type="NORMAL_JOB",
                definition={"v": 2},
                user="first",
                now=clock.now(),
            )
            events.append("first commits")

    async def second() -> Definition | None:
        await holding.wait()
        async with db.transaction() as conn:
            found = await cdm.definition_get(conn, "p1", "c1", "orders", lock=True)
            events.append("second reads")
            return found

    _, seen = await asyncio.wait_for(asyncio.gather(first(), second()), timeout=20)
    assert events == ["first commits", "second reads"]
    assert seen is not None and (seen.definition, seen.updated_by) == ({"v": 2}, "first")
    async with db.transaction() as conn:
        assert await cdm.definition_get(conn, "p1", "c2", "orders", lock=True) is None


# -- submissions --------------------------------------------------------------------------------


async def test_submissions_list_newest_first_with_their_jobs_states(
    db: Database, store: JobStore, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders")
    assert await define(db, cdm, clock, "orders", cluster="c2")
    orders = await stored(db, cdm, "orders")
    elsewhere = await stored(db, cdm, "orders", cluster="c2")
    submitted = clock.now()
    done = await submit(db, store, cdm, clock, orders, "s-done", user="alice")
    running = await submit(db, store, cdm, clock, orders, "s-running", delete_after=True)
    clock.advance(10)
    claimed = clock.now()
    assert await claim(db, store, clock) == [done, running]
    clock.advance(10)
    assert await finish(db, store, clock, done, 1)
    async with db.transaction() as conn:
        assert await store.job_progress(
            conn, job_id=running, attempt=1, progress=40, now=clock.now()
        )
    queued = await submit(db, store, cdm, clock, orders, "s-queued", user=None)
    await submit(db, store, cdm, clock, elsewhere, "s-elsewhere")

    total, rows = await history(db, cdm, "orders", limit=10)
    assert total == 3
    assert [r.job_id for r in rows] == [queued, running, done]
    newest, middle, oldest = rows
    assert newest == SubmissionRow(
        job_id=queued,
        job_name="orders",
        is_delete_job=False,
        created_by=None,
        created_at=clock.now(),
        status="queued",
        job_tag="s-queued",
        progress=0,
        started_at=None,
        updated_at=clock.now(),
        finished_at=None,
        status_map={},
        response_text=None,
    )
    assert (middle.status, middle.job_tag, middle.progress, middle.is_delete_job) == (
        "running",
        "s-running",
        40,
        True,
    )
    assert middle.started_at == claimed
    assert middle.updated_at == clock.now() and middle.finished_at is None
    assert (oldest.status, oldest.progress, oldest.response_text) == ("done", 100, '{"ok": true}')
    assert (oldest.created_by, oldest.created_at) == ("alice", submitted)
    assert oldest.finished_at == clock.now() and oldest.status_map == {}

    # The default page is the newest one; offset and limit page through the rest.
    assert await history(db, cdm, "orders") == (3, [newest])
    assert await history(db, cdm, "orders", offset=1, limit=1) == (3, [middle])
    assert await history(db, cdm, "orders", offset=3, limit=5) == (3, [])
    assert [r.job_tag for r in (await history(db, cdm, "orders", cluster="c2"))[1]] == [
        "s-elsewhere"
    ]
    assert await history(db, cdm, "returns") == (0, [])


async def test_a_removed_job_answers_from_its_tombstone_and_a_lost_one_as_error(
    db: Database, store: JobStore, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders")
    orders = await stored(db, cdm, "orders")
    removed = await submit(db, store, cdm, clock, orders, "s-removed", remove=True)
    failed = await submit(db, store, cdm, clock, orders, "s-failed")
    await claim(db, store, clock)
    clock.advance(5)
    assert await finish(db, store, clock, removed, 1)
    assert await finish(
        db, store, clock, failed, 1, status=JobState.ERROR, status_map={"error_message": "boom"}
    )
    async with db.transaction() as conn:  # a job row gone without a tombstone
        await cdm.submission_insert(
            conn,
            job_id=failed + 1000,
            definition=orders,
            is_delete_job=False,
            user=None,
            now=clock.now(),
        )

    total, rows = await history(db, cdm, "orders", limit=10)
    assert total == 3
    lost, error, stone = rows
    assert (stone.job_id, stone.status, stone.job_tag, stone.progress) == (
        removed,
        "done",
        "s-removed",
        0,
    )
    assert stone.finished_at == clock.now()
    assert (stone.started_at, stone.updated_at, stone.status_map, stone.response_text) == (
        None,
        None,
        {},
        None,
    )
    assert (error.status, error.status_map) == ("error", {"error_message": "boom"})
    assert (lost.job_id, lost.status, lost.job_tag, lost.progress, lost.finished_at) == (
        failed + 1000,
        "error",
        "",
        0,
        None,
    )


async def test_active_is_the_queued_or_running_submission_of_that_definition(
    db: Database, store: JobStore, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders")
    assert await define(db, cdm, clock, "returns")
    assert await define(db, cdm, clock, "orders", cluster="c2")
    orders = await stored(db, cdm, "orders")
    returns = await stored(db, cdm, "returns")
    elsewhere = await stored(db, cdm, "orders", cluster="c2")
    assert await active(db, cdm, "orders") is None  # never started
    other = await submit(db, store, cdm, clock, returns, "r-1")
    there = await submit(db, store, cdm, clock, elsewhere, "e-1")
    assert await active(db, cdm, "orders") is None  # others' jobs do not count
    first = await submit(db, store, cdm, clock, orders, "o-1")
    assert await active(db, cdm, "orders") == first  # queued
    assert await claim(db, store, clock) == [other, there, first]
    assert await active(db, cdm, "orders") == first  # running
    assert await finish(db, store, clock, first, 1)
    assert await active(db, cdm, "orders") is None  # done
    second = await submit(db, store, cdm, clock, orders, "o-2")
    async with db.transaction() as conn:
        assert await store.job_cancel(conn, [second], clock.now()) == {second: "cancelled"}
    assert await active(db, cdm, "orders") is None  # cancelled
    assert await active(db, cdm, "returns") == other
    assert await active(db, cdm, "orders", cluster="c2") == there


async def test_prune_deletes_the_submissions_of_the_given_jobs(
    db: Database, store: JobStore, cdm: CdmStore, clock: ManualClock
) -> None:
    assert await define(db, cdm, clock, "orders")
    orders = await stored(db, cdm, "orders")
    ids = [await submit(db, store, cdm, clock, orders, f"s-{i}") for i in range(3)]
    async with db.transaction() as conn:
        await cdm.submission_prune(conn, [])
    assert (await history(db, cdm, "orders", limit=10))[0] == 3
    async with db.transaction() as conn:
        await cdm.submission_prune(conn, [ids[0], ids[2], 99_999])
    total, rows = await history(db, cdm, "orders", limit=10)
    assert (total, [r.job_id for r in rows]) == (1, [ids[1]])


async def test_reap_deletes_definitions_whose_delete_after_run_submission_ended(
    db: Database, store: JobStore, cdm: CdmStore, clock: ManualClock
) -> None:
    for name in ("idle", "plain", "still_running", "ended", "lost"):
        assert await define(db, cdm, clock, name)
    found = {name: await stored(db, cdm, name) for name in ("plain", "still_running", "ended")}
    plain = await submit(db, store, cdm, clock, found["plain"], "plain-1")
    running = await submit(
        db, store, cdm, clock, found["still_running"], "run-1", delete_after=True
    )
    ended = await submit(
        db, store, cdm, clock, found["ended"], "end-1", delete_after=True, remove=True
    )
    lost = await stored(db, cdm, "lost")
    async with db.transaction() as conn:  # its job row is gone, with no tombstone either
        await cdm.submission_insert(
            conn, job_id=10_000, definition=lost, is_delete_job=True, user=None, now=clock.now()
        )
    assert await claim(db, store, clock) == [plain, running, ended]
    assert await finish(db, store, clock, plain, 1)
    assert await finish(db, store, clock, ended, 1)  # removed on completion: a tombstone

    async with db.transaction() as conn:
        assert await cdm.definition_reap(conn) == 2
        assert await cdm.definition_reap(conn) == 0
    total, names = await listing(db, cdm)
    assert (total, names) == (3, ["idle", "plain", "still_running"])
    # The submissions stay: the history of a reaped definition is still there.
    assert (await history(db, cdm, "ended"))[0] == 1
    async with db.transaction() as conn:
        await store.job_finish_many(
            conn,
            [(running, 1, Outcome(JobState.DONE, Payload(Encoding.JSON, text="{}")))],
            clock.now(),
        )
        assert await cdm.definition_reap(conn) == 1
    assert await listing(db, cdm) == (2, ["idle", "plain"])
