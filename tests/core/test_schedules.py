"""Recurring schedules through the core, on SQLite and PostgreSQL: what a create refuses, one job
per fire time however many nodes fire, the misfire policies after an outage (a clock moved on
by the test), pause and resume, fire now, delete; and the loop of several nodes firing a
one-second schedule on the real clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from jobstore.cli.node import Node, node_for_tests
from jobstore.core.schedules import NewSchedule
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import (
    BadOption,
    DecodeError,
    ScheduleExists,
    ScheduleNotFound,
    UnknownEndpoint,
)
from jobstore.domain.models import Encoding, Payload
from jobstore.domain.schedules import MISFIRE_GRACE
from jobstore.store import Database
from jobstore.store.tables import jobs

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ECHO = Payload(Encoding.JSON, text='{"n": 1}')


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def node(db: Database, clock: ManualClock) -> AsyncIterator[Node]:
    made = node_for_tests(db, node_id="schedule-test", clock=clock)
    try:
        yield made
    finally:
        await made.executor.stop()


def every(name: str, seconds: float = 1, **kwargs: object) -> NewSchedule:
    return NewSchedule(
        name=name, endpoint="/echo", payload=ECHO, every_seconds=seconds, start_at=START, **kwargs
    )


async def job_rows(db: Database) -> list[sa.Row]:
    async with db.reading() as conn:
        query = sa.select(jobs.c.job_id, jobs.c.job_tag, jobs.c.options).order_by(jobs.c.job_id)
        return list(await conn.execute(query))


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"name": "no spaces"}, BadOption, "name"),
        ({"cron": "* * * * *"}, BadOption, "cron"),  # and every_seconds: both
        ({"every_seconds": 0.1}, BadOption, "every_seconds"),
        ({"timezone": "Nowhere/Else"}, BadOption, "timezone"),
        ({"misfire": "sometimes"}, BadOption, "misfire"),
        ({"options": {"job_tag": "mine"}}, BadOption, "job_tag"),
        ({"options": {"priority": "9999"}}, BadOption, "priority"),
        ({"endpoint": "/nowhere"}, UnknownEndpoint, None),
        ({"payload": Payload(Encoding.JSON, text="{not json")}, DecodeError, None),
    ],
)
async def test_a_create_refuses_what_could_not_fire(
    node: Node, change: dict, error: type[Exception], field: str | None
) -> None:
    base = every("nightly").__dict__ | change
    with pytest.raises(error) as raised:
        await node.schedules.create(NewSchedule(**base))
    if field is not None:
        assert getattr(raised.value, "option", None) == field
    assert await node.schedules.list() == []


async def test_names_are_unique(node: Node) -> None:
    await node.schedules.create(every("hourly"))
    with pytest.raises(ScheduleExists):
        await node.schedules.create(every("hourly", 5))
    assert [s.every_seconds for s in await node.schedules.list()] == [1]


# -- firing ---------------------------------------------------------------------------------


async def test_each_fire_time_creates_one_tagged_job(
    db: Database, node: Node, clock: ManualClock
) -> None:
    made = await node.schedules.create(every("tick", options={"priority": 3}))
    assert made.next_fire_at == START
    for _ in range(3):
        fired = await node.schedules.fire_due()
        again = await node.schedules.fire_due()  # the same moment: nothing more is due
        assert len(fired.jobs["tick"]) == 1 and again.jobs == {}
        clock.advance(1)
    rows = await job_rows(db)
    times = [START + timedelta(seconds=s) for s in range(3)]
    assert [r.job_tag for r in rows] == [made.tag_for(t) for t in times]
    assert [r.options["fire_time"] for r in rows] == [t.isoformat() for t in times]
    assert {r.options["schedule"] for r in rows} == {"tick"}
    assert {r.options["priority"] for r in rows} == {"3"}
    state = await node.schedules.get("tick")
    assert state.last_fire_at == times[-1] and state.last_job_id == rows[-1].job_id
    assert state.next_fire_at == START + timedelta(seconds=3)


async def test_a_fire_time_fired_twice_creates_one_job(db: Database, node: Node) -> None:
    """As when two nodes fire the same time: the second create finds the first job's tag."""
    await node.schedules.create(every("once-only"))
    first = await node.schedules.fire_due()
    async with db.transaction() as conn:  # put the schedule back, as a node that lagged sees it
        await db.schedules.schedule_update(conn, "once-only", {"next_fire_at": START})
    second = await node.schedules.fire_due()
    assert first.jobs == second.jobs
    assert len(await job_rows(db)) == 1


async def test_a_schedule_that_cannot_fire_does_not_hold_up_the_others(
    db: Database, node: Node, clock: ManualClock
) -> None:
    await node.schedules.create(every("broken"))
    await node.schedules.create(every("fine"))
    async with db.transaction() as conn:  # its payload no longer parses (edited by hand)
        await db.schedules.schedule_update(conn, "broken", {"request_text": "{not json"})
    fired = await node.schedules.fire_due()
    assert list(fired.jobs) == ["fine"]
    broken = await node.schedules.get("broken")
    assert broken.next_fire_at == START + timedelta(seconds=1)  # moved on, not stuck
    assert broken.last_job_id is None


@pytest.mark.parametrize(("misfire", "missed_runs"), [("skip", 0), ("once", 1), ("all", 60)])
async def test_after_an_hour_down_the_misfire_policy_decides(
    db: Database, node: Node, clock: ManualClock, misfire: str, missed_runs: int
) -> None:
    await node.schedules.create(
        NewSchedule(
            name="minutely", endpoint="/echo", payload=ECHO, cron="* * * * *", misfire=misfire
        )
    )
    clock.advance(3600)  # nobody was up for an hour: 12:00 to 12:59 went by, 13:00 is due
    fired = await node.schedules.fire_due()
    rows = await job_rows(db)
    fire_times = [datetime.fromisoformat(r.options["fire_time"]) for r in rows]
    on_time = [t for t in fire_times if t > clock.now() - MISFIRE_GRACE]
    assert on_time == [START + timedelta(hours=1)]
    assert len(fire_times) - len(on_time) == missed_runs
    assert fired.dropped == 60 - missed_runs
    assert len(set(fire_times)) == len(fire_times)


async def test_pause_resume_fire_now_and_delete(
    db: Database, node: Node, clock: ManualClock
) -> None:
    await node.schedules.create(every("report", 60))
    paused = await node.schedules.set_enabled("report", False)
    assert not paused.enabled
    clock.advance(600)
    assert (await node.schedules.fire_due()).jobs == {}
    resumed = await node.schedules.set_enabled("report", True)
    # What was missed while paused is not made up: the next fire time from now.
    assert resumed.next_fire_at == START + timedelta(seconds=600)
    job_id = await node.schedules.fire_now("report")
    job = await node.jobs.get_job(job_id=job_id)
    assert job.options["schedule"] == "report" and "fire_time" not in job.options
    await node.schedules.delete("report")
    with pytest.raises(ScheduleNotFound):
        await node.schedules.get("report")
    with pytest.raises(ScheduleNotFound):
        await node.schedules.delete("report")
    assert [r.job_id for r in await job_rows(db)] == [job_id]  # its jobs stay


# -- the loop, on the real clock ------------------------------------------------------------


async def test_three_nodes_fire_a_one_second_schedule_once_per_second(
    database_url: str,
) -> None:
    dbs = [Database(database_url, pool_size=2) for _ in range(3)]
    nodes = [node_for_tests(db, node_id=f"firer-{i}") for i, db in enumerate(dbs)]
    try:
        created = await nodes[0].schedules.create(
            NewSchedule(name="every-second", endpoint="/echo", payload=ECHO, every_seconds=1)
        )
        for node in nodes:
            await node.schedules.start()
        await asyncio.sleep(5.5)
    finally:
        for node in nodes:
            await node.schedules.stop()
            await node.executor.stop()
    rows = await job_rows(dbs[0])
    for db in dbs:
        await db.dispose()
    fire_times = [datetime.fromisoformat(r.options["fire_time"]) for r in rows]
    assert len(fire_times) == len(set(fire_times)) >= 5  # no duplicate
    gaps = {b - a for a, b in itertools.pairwise(sorted(fire_times))}
    assert gaps == {timedelta(seconds=1)}, gaps  # no gap
    assert {r.job_tag for r in rows} == {created.tag_for(t) for t in fire_times}
