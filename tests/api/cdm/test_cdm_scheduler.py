"""CDM scheduled definitions (`schedulerConfig`), on SQLite and PostgreSQL.

In-process through the CDM HTTP API on a ManualClock, firing with `fire_due` and running with
the executor as the test says: a scheduled definition fires one submission per fire time, its
placeholders resolved at the planned fire time (a catch-up fire too); a fire while the previous
run is unfinished is skipped; modify and delete keep the schedule with the definition, in one
transaction; bad scheduler configs are refused with CDM's body. Then once end to end: a real
`jobstore serve` fires a definition scheduled two seconds ahead on its own.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobstore.api.cdm.scheduling import read_timing, schedule_name
from jobstore.cli.node import Node, node_for_tests
from jobstore.core.accounts import Authenticator
from jobstore.core.schedules import NAME
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import ClientError, ScheduleNotFound
from jobstore.domain.schedules import Schedule, ScheduleSpec
from jobstore.store import Database
from tests.support.e2e import Server, query, server_factory, wait_for

BASE = "/v1.1/p1/clusters/c1/cdm"
START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
# What /echo answers is its request: the fire's resolved placeholders, read from the job row.
PLANNED = '{"planned": "${dateformat(yyyy-MM-dd HH:mm:ss)}", "ms": ${timestamp()}}'


def scheduled(
    name: str,
    *,
    cycle_type: str = "minute",
    cycle: str = "5",
    start: str = "2026-06-01 12:10:00",
    request: str = PLANNED,
    **scheduler: str,
) -> dict[str, Any]:
    """A definition running /echo with `request`, scheduled as told (more schedulerConfig
    inputs by keyword: isSchedulerJob, stopDate, runAt, disposableType...)."""
    inputs = {
        "isSchedulerJob": "true",
        "cycleType": cycle_type,
        "cycle": cycle,
        "startDate": start,
        **scheduler,
    }
    return {
        "name": name,
        "from-link-name": "src",
        "to-link-name": "dst",
        "driver-config-values": {
            "configs": [
                {
                    "name": "jobstoreConfig",
                    "inputs": [
                        {"name": "jobstoreConfig.endpoint", "value": "/echo"},
                        {"name": "jobstoreConfig.request", "value": request},
                    ],
                },
                {
                    "name": "schedulerConfig",
                    "inputs": [
                        {"name": f"schedulerConfig.{k}", "value": v} for k, v in inputs.items()
                    ],
                },
            ]
        },
    }


@dataclass
class CdmNode:
    node: Node
    client: httpx.AsyncClient  # sends alice's p1 token
    clock: ManualClock

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.client.request(method, BASE + path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def refused(self, method: str, path: str, body: Any, code: str) -> str:
        response = await self.client.request(method, BASE + path, json=body)
        assert response.status_code == 400, response.text
        answer = response.json()
        assert answer["errCode"] == answer["code"] == code, answer
        return str(answer["message"])

    async def history(self, name: str) -> list[dict[str, Any]]:
        answer = await self.ok("GET", f"/submissions?jname={name}&page_size=100")
        submissions: list[dict[str, Any]] = answer["submissions"]
        return submissions

    async def schedule(self, name: str) -> Schedule:
        return await self.node.schedules.get(schedule_name("p1", "c1", name))

    async def fire(self, name: str) -> list[int]:
        """Fire what is due now; the job ids the schedule of `name` created."""
        fired = await self.node.schedules.fire_due()
        return fired.jobs.get(schedule_name("p1", "c1", name), [])

    async def request_of(self, job_id: int) -> dict[str, Any]:
        async with self.node.db.reading() as conn:
            sql = sa.text("SELECT request_text FROM jobs WHERE job_id = :i")
            text = (await conn.execute(sql, {"i": job_id})).scalar_one()
        value: dict[str, Any] = json.loads(text)
        return value


@pytest.fixture
async def cdm(db: Database) -> AsyncIterator[CdmNode]:
    clock = ManualClock(START)
    node = node_for_tests(db, node_id="cdm-scheduler", clock=clock)
    await node.accounts.add_user("alice", None)
    _, token = await node.accounts.create_token("alice", "p1")
    transport = httpx.ASGITransport(app=node.app(run_background=False))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"X-Auth-Token": token}
        ) as client:
            yield CdmNode(node, client, clock)
    finally:
        await node.executor.stop()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- firing ---------------------------------------------------------------------------------------


async def test_a_scheduled_definition_fires_one_submission_per_fire_time(cdm: CdmNode) -> None:
    await cdm.ok("POST", "/job", {"jobs": [scheduled("every5")]})
    [shown] = (await cdm.ok("GET", "/job/every5"))["jobs"]
    assert shown["is-execute-auto"] is True
    schedule = await cdm.schedule("every5")
    assert (schedule.source, schedule.every_seconds, schedule.cron) == ("cdm", 300, None)
    assert schedule.next_fire_at == START + timedelta(minutes=10)  # startDate, read in UTC

    assert await cdm.fire("every5") == []  # before startDate
    cdm.clock.advance(600)
    [first] = await cdm.fire("every5")
    assert await cdm.fire("every5") == []  # the same moment again: nothing more
    fire_1 = START + timedelta(minutes=10)
    request = await cdm.request_of(first)
    assert (request["job-name"], request["from-link-name"]) == ("every5", "src")
    assert (request["planned"], request["ms"]) == ("2026-06-01 12:10:00", ms(fire_1))
    [sub] = await cdm.history("every5")
    assert (sub["submission-id"], sub["status"], sub["is-execute-auto"]) == (
        first,
        "BOOTING",
        True,
    )
    assert sub["external-id"] == schedule.tag_for(fire_1)
    assert sub["creation-user"] == "alice"

    # The next fire time comes while that run is still queued: CDM skips the cycle.
    cdm.clock.advance(300)
    assert await cdm.fire("every5") == []
    assert [s["submission-id"] for s in await cdm.history("every5")] == [first]
    assert (await cdm.schedule("every5")).next_fire_at == fire_1 + timedelta(minutes=10)

    assert await cdm.node.executor.run_once() == [first]
    cdm.clock.advance(300)
    [second] = await cdm.fire("every5")
    assert (await cdm.request_of(second))["planned"] == "2026-06-01 12:20:00"
    status = await cdm.ok("GET", "/job/every5/status")
    assert status["submissions"][0]["submission-id"] == second
    assert [s["status"] for s in await cdm.history("every5")] == ["BOOTING", "SUCCEEDED"]
    state = await cdm.schedule("every5")
    assert (state.last_job_id, state.last_fire_at) == (second, fire_1 + timedelta(minutes=10))


async def test_a_catch_up_fire_resolves_at_its_planned_time(cdm: CdmNode) -> None:
    """Down for days: the latest missed fire time runs once, with that time's dates."""
    request = (
        '{"planned": "${dateformat(yyyy-MM-dd HH:mm)}",'
        ' "yesterday": "${dateformat(yyyy-MM-dd, -1, DAY)}", "ms": ${timestamp()}}'
    )
    daily = scheduled(
        "nightly", cycle_type="day", cycle="1", start="2026-06-01 02:00:00", request=request
    )
    await cdm.ok("POST", "/job", {"jobs": [daily]})
    assert (await cdm.schedule("nightly")).next_fire_at == datetime(2026, 6, 2, 2, tzinfo=UTC)

    cdm.clock.advance(4 * 86_400)  # now 2026-06-05 12:00: four 02:00 fire times missed
    [job_id] = await cdm.fire("nightly")
    resolved = await cdm.request_of(job_id)
    assert (resolved["planned"], resolved["yesterday"], resolved["ms"]) == (
        "2026-06-05 02:00",
        "2026-06-04",
        ms(datetime(2026, 6, 5, 2, tzinfo=UTC)),
    )
    assert len(await cdm.history("nightly")) == 1
    assert (await cdm.schedule("nightly")).next_fire_at == datetime(2026, 6, 6, 2, tzinfo=UTC)


async def test_a_month_schedule_fires_on_the_start_dates_day(cdm: CdmNode) -> None:
    job = scheduled("monthly", cycle_type="month", cycle="2", start="2026-06-15 06:30:00")
    await cdm.ok("POST", "/job", {"jobs": [job]})
    schedule = await cdm.schedule("monthly")
    assert (schedule.cron, schedule.every_seconds) == ("0 30 6 15 2,4,6,8,10,12 *", None)
    cdm.clock.advance((datetime(2026, 8, 15, 6, 30, tzinfo=UTC) - START).total_seconds())
    # June's was missed, August's is on time: one run, of the latest.
    [first] = await cdm.fire("monthly")
    assert (await cdm.request_of(first))["planned"] == "2026-08-15 06:30:00"
    assert (await cdm.schedule("monthly")).next_fire_at == datetime(2026, 10, 15, 6, 30, tzinfo=UTC)


async def test_a_fire_now_is_a_submission_and_is_refused_while_one_runs(cdm: CdmNode) -> None:
    await cdm.ok("POST", "/job", {"jobs": [scheduled("on_request")]})
    name = schedule_name("p1", "c1", "on_request")
    job_id = await cdm.node.schedules.fire_now(name)
    [sub] = await cdm.history("on_request")
    assert sub["submission-id"] == job_id
    assert (await cdm.request_of(job_id))["planned"] == "2026-06-01 12:00:00"  # now
    with pytest.raises(ClientError, match=r"Job\[on_request\] is already running"):
        await cdm.node.schedules.fire_now(name)
    started = await cdm.client.put(f"{BASE}/job/on_request/start")
    assert started.status_code == 400 and started.json()["errCode"] == "Cdm.0500"


# -- the schedule follows the definition ----------------------------------------------------------


async def test_modify_and_delete_keep_the_schedule_with_the_definition(cdm: CdmNode) -> None:
    await cdm.ok("POST", "/job", {"jobs": [scheduled("kept")]})
    await cdm.ok("PUT", "/job/kept", {"jobs": [scheduled("kept", cycle_type="hour", cycle="2")]})
    assert (await cdm.schedule("kept")).every_seconds == 7_200

    # A refused modify changes neither the definition nor its schedule.
    bad = scheduled("kept", cycle_type="fortnight")
    message = await cdm.refused("PUT", "/job/kept", {"jobs": [bad]}, "Cdm.0104")
    assert "schedulerConfig.cycleType" in message
    assert (await cdm.schedule("kept")).every_seconds == 7_200

    # isSchedulerJob false: no schedule, nothing fires; true again: scheduled again.
    await cdm.ok("PUT", "/job/kept", {"jobs": [scheduled("kept", isSchedulerJob="false")]})
    [shown] = (await cdm.ok("GET", "/job/kept"))["jobs"]
    assert shown["is-execute-auto"] is False
    with pytest.raises(ScheduleNotFound):
        await cdm.schedule("kept")
    cdm.clock.advance(3_600)
    assert (await cdm.node.schedules.fire_due()).jobs == {}
    started = (await cdm.ok("PUT", "/job/kept/start"))["submissions"][0]
    assert started["is-execute-auto"] is False

    await cdm.ok("PUT", "/job/kept", {"jobs": [scheduled("kept", start="2026-06-01 13:30:00")]})
    assert (await cdm.schedule("kept")).next_fire_at == START + timedelta(minutes=90)
    [sub] = await cdm.history("kept")
    assert sub["is-execute-auto"] is True  # the definition's: it runs on a schedule now

    await cdm.ok("DELETE", "/job/kept")
    with pytest.raises(ScheduleNotFound):
        await cdm.schedule("kept")
    assert await cdm.node.schedules.list() == []


async def test_its_schedule_is_changed_through_the_definition_only(cdm: CdmNode) -> None:
    """REST may pause, resume and fire a definition's schedule, not change or delete it."""
    await cdm.ok("POST", "/job", {"jobs": [scheduled("kept")]})
    name = schedule_name("p1", "c1", "kept")
    before = await cdm.schedule("kept")
    rest = f"http://testserver/api/v1/schedules/{name}"
    for method, body in (("PATCH", {"every_seconds": 5}), ("DELETE", None)):
        answer = await cdm.client.request(method, rest, json=body)
        assert answer.status_code == 400, answer.text
        assert "CDM definition" in answer.json()["detail"]
    paused = await cdm.client.post(f"{rest}/pause")
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert (await cdm.schedule("kept")).every_seconds == before.every_seconds


async def test_a_modify_that_keeps_the_times_keeps_a_due_fire(cdm: CdmNode) -> None:
    await cdm.ok("POST", "/job", {"jobs": [scheduled("due")]})
    cdm.clock.advance(630)  # 12:10:30: the first fire time, 12:10, is due and not fired yet
    other = scheduled("due", request='{"planned": "${dateformat(HH:mm)}"}')
    await cdm.ok("PUT", "/job/due", {"jobs": [other]})
    assert (await cdm.schedule("due")).next_fire_at == START + timedelta(minutes=10)
    [job_id] = await cdm.fire("due")
    assert (await cdm.request_of(job_id))["planned"] == "12:10"  # the new request
    cdm.clock.advance(60)
    await cdm.ok("PUT", "/job/due", {"jobs": [scheduled("due", cycle="10")]})
    assert (await cdm.schedule("due")).next_fire_at == START + timedelta(minutes=20)


async def test_a_refused_create_stores_no_definition_and_no_schedule(cdm: CdmNode) -> None:
    await cdm.ok("POST", "/job", {"jobs": [scheduled("taken")]})
    both = {"jobs": [scheduled("fresh"), scheduled("taken")]}
    assert "already exists" in await cdm.refused("POST", "/job", both, "Cdm.0104")
    assert [s.name for s in await cdm.node.schedules.list()] == [schedule_name("p1", "c1", "taken")]
    assert (await cdm.ok("GET", "/job/all"))["total"] == 1


async def test_a_definition_deleted_after_its_run_takes_its_schedule(cdm: CdmNode) -> None:
    job = scheduled("once", disposableType="DELETE_AFTER_SUCCEED")
    await cdm.ok("POST", "/job", {"jobs": [job]})
    cdm.clock.advance(600)
    [job_id] = await cdm.fire("once")
    assert await cdm.node.executor.run_once() == [job_id]
    gone = await cdm.client.get(f"{BASE}/job/once")
    assert gone.json()["errCode"] == "Cdm.0100"
    cdm.clock.advance(300)
    assert await cdm.fire("once") == []
    assert await cdm.node.schedules.list() == []
    assert [s["submission-id"] for s in await cdm.history("once")] == [job_id]


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({"isSchedulerJob": "maybe"}, "schedulerConfig.isSchedulerJob"),
        ({"cycleType": "fortnight"}, "schedulerConfig.cycleType"),
        ({"cycle": "0"}, "schedulerConfig.cycle"),
        ({"cycle": "1.5"}, "schedulerConfig.cycle"),
        ({"cycleType": "month", "cycle": "5"}, "1, 2, 3, 4, 6 or 12"),
        ({"startDate": ""}, "needs 'schedulerConfig.startDate'"),
        ({"startDate": "01/06/2026 12:00"}, "yyyy-MM-dd HH:mm:ss"),
        ({"stopDate": "2026-06-01 12:00:00"}, "must be after"),
        ({"endDate": "2026-13-01 00:00:00"}, "schedulerConfig.endDate"),
        ({"runAt": "15"}, "schedulerConfig.runAt"),
        ({"request": '{"region": "${region}"}'}, "'region' has no value"),
    ],
)
async def test_scheduler_configs_that_cannot_run_are_refused(
    cdm: CdmNode, inputs: dict[str, str], says: str
) -> None:
    job = scheduled("refused", **inputs)
    message = await cdm.refused("POST", "/job", {"jobs": [job]}, "Cdm.0104")
    assert says in message and "Job[refused]" in message, message
    assert (await cdm.ok("GET", "/job/all"))["total"] == 0
    assert await cdm.node.schedules.list() == []


# -- pure: the mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle_type", "cycle", "start", "every", "cron"),
    [
        ("minute", "5", "2026-06-01 12:10:00", 300, None),
        ("hour", "2", "2026-06-01 12:10:00", 7_200, None),
        ("day", "", "2026-06-01 12:10", 86_400, None),  # cycle defaults to 1; no seconds
        ("week", "2", "2026-06-01 12:10:00", 1_209_600, None),
        ("month", "1", "2026-01-31 06:30:15", None, "15 30 6 31 1,2,3,4,5,6,7,8,9,10,11,12 *"),
        ("MONTH", "3", "2026-11-15 08:00:00", None, "0 0 8 15 2,5,8,11 *"),
    ],
)
def test_cycles_map_to_a_grid_anchored_at_the_start_date(
    cycle_type: str, cycle: str, start: str, every: int | None, cron: str | None
) -> None:
    driver = {
        "schedulerConfig.isSchedulerJob": "True",
        "schedulerConfig.cycleType": cycle_type,
        "schedulerConfig.cycle": cycle,
        "schedulerConfig.startDate": start,
    }
    timing = read_timing(driver)
    assert timing is not None
    assert (timing.every_seconds, timing.cron) == (every, cron)
    spec = ScheduleSpec(
        cron=timing.cron, every_seconds=timing.every_seconds, start_at=timing.start_at
    )
    first = spec.first_fire(datetime(2025, 1, 1, tzinfo=UTC))
    assert first == timing.start_at == datetime.fromisoformat(start).replace(tzinfo=UTC)


def test_a_month_schedule_skips_the_months_without_its_day() -> None:
    driver = {
        "schedulerConfig.isSchedulerJob": "true",
        "schedulerConfig.cycleType": "month",
        "schedulerConfig.startDate": "2026-01-31 00:00:00",
        "schedulerConfig.stopDate": "2026-06-01 00:00:00",
    }
    timing = read_timing(driver)
    assert timing is not None
    spec = ScheduleSpec(cron=timing.cron, start_at=timing.start_at, end_at=timing.end_at)
    times, moment = [], spec.first_fire(timing.start_at)
    while moment is not None:
        times.append(moment.date().isoformat())
        moment = spec.next_fire(moment)
    assert times == ["2026-01-31", "2026-03-31", "2026-05-31"]


def test_schedule_names_are_valid_and_tell_definitions_apart() -> None:
    assert schedule_name("a-b", "c", "x") != schedule_name("a", "b-c", "x")
    assert schedule_name("p1", "c1", "nightly").startswith("cdm-p1.c1.nightly-")
    odd = schedule_name("p" * 128, "c" * 128, "ü/名 " * 60)
    assert NAME.fullmatch(odd) and len(odd) <= 100


# -- end to end: a real server fires on its own ---------------------------------------------------


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A started `jobstore serve` on the test's database, and alice's p1 token."""

    async def token() -> str:
        database = Database(database_url, pool_size=1)
        try:
            auth = Authenticator(database)
            await auth.add_user("alice", None)
            return (await auth.create_token("alice", "p1"))[1]
        finally:
            await database.dispose()

    with server_factory(database_url, tmp_path) as new_server:
        yield new_server().start(), asyncio.run(token())


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_server_fires_a_scheduled_definition_on_its_own(
    server: tuple[Server, str], database_url: str
) -> None:
    running, token = server
    client = running.client
    headers = {"X-Auth-Token": token}
    # Two seconds ahead, whole seconds (startDate has no fraction); one fire before stopDate.
    start = datetime.fromtimestamp(math.ceil(time.time()) + 2, UTC)
    text = start.strftime("%Y-%m-%d %H:%M:%S")
    stop = (start + timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S")
    job = scheduled("soon", cycle="1", start=text, stopDate=stop)
    created = client.post(f"{BASE}/job", json={"jobs": [job]}, headers=headers)
    assert created.status_code == 200, created.text

    def succeeded() -> dict[str, Any] | None:
        answer = client.get(f"{BASE}/job/soon/status", headers=headers).json()
        [sub] = answer["submissions"]
        return sub if sub["status"] == "SUCCEEDED" else None

    sub = wait_for("the scheduled run to succeed", succeeded, timeout=30, logs=running.logs)
    assert sub["is-execute-auto"] is True
    [row] = query(database_url, "SELECT job_id, response_text FROM jobs")
    assert row["job_id"] == sub["submission-id"]
    answer = json.loads(row["response_text"])
    assert (answer["planned"], answer["ms"]) == (text, ms(start))

    deleted = client.delete(f"{BASE}/job/soon", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert query(database_url, "SELECT name FROM schedules") == []
