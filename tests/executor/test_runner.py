"""The executor, driven one step at a time (`*_once`) with a manual clock: no sleeps."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import snappy
from sqlalchemy import event

from jobstore.core.jobs import JobService
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import Encoding, Job, JobState, Payload
from jobstore.endpoints.builtins import SLEEP_REQUEST, SLEEP_RESPONSE
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database
from tests.support.avro import avro_read, avro_write


class Gate:
    """Lets a test hold a handler mid-run and release it, from the loop or a thread."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self.saw_cancel = False
        self.reported: list[int] = []

    async def async_handler(self, request: Any, ctx: JobContext) -> Any:
        self.started.set()
        ctx.set_progress(40)
        while not self.release.is_set():
            await ctx.sleep(0.01)
        return {"ok": True}

    async def reporting_handler(self, request: Any, ctx: JobContext) -> Any:
        ctx.set_progress(request["percent"])
        self.reported.append(request["percent"])
        while not self.release.is_set():
            await ctx.sleep(0.01)
        return {"ok": True}

    def blocking_handler(self, request: Any, ctx: JobContext) -> Any:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        self.release.wait(10)
        self.saw_cancel = ctx.cancelled
        return {"ok": True}  # ignores cancellation on purpose


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate):  # type: ignore[no-untyped-def]
    registry = default_registry()
    registry.add(Endpoint("/hold", gate.async_handler))
    registry.add(Endpoint("/block", gate.blocking_handler))
    registry.add(Endpoint("/hold-once", gate.async_handler, retryable=False))
    registry.add(Endpoint("/report", gate.reporting_handler))
    registry.add(Endpoint("/crash", lambda request, ctx: 1 / 0))
    registry.add(Endpoint("/bad-answer", lambda request, ctx: {1, 2}))
    registry.add(Endpoint("/bad-text", lambda request, ctx: {"s": "\ud800"}))
    return registry


@pytest.fixture
def service(db: Database, registry: Any, clock: ManualClock) -> JobService:
    return JobService(db, registry, clock=clock)


def make_executor(
    db: Database, registry: Any, clock: ManualClock, node: str = "n1", **config: Any
) -> Executor:
    return Executor(db, registry, ExecutorConfig(node_id=node, **config), clock=clock)


@pytest.fixture
async def executor(db: Database, registry: Any, clock: ManualClock):  # type: ignore[no-untyped-def]
    ex = make_executor(db, registry, clock, cancel_grace_seconds=5)
    yield ex
    await ex.stop(wait_seconds=0)


async def create(service: JobService, endpoint: str, payload: Payload, **options: str) -> int:
    return (await service.create_job(endpoint, payload, options)).job_id


async def job(service: JobService, job_id: int) -> Job:
    return await service.get_job(job_id=job_id)


async def wait_started(gate: Gate) -> None:
    """The handler signals from the loop or a thread; wait for it without blocking the loop."""
    started = await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 5)
    assert started, "the handler never started"


# -- running handlers ------------------------------------------------------------------------


async def test_echo_keeps_each_encoding(service: JobService, executor: Executor) -> None:
    raw = bytes(range(256))
    ids = [
        await create(service, "/echo", Payload(Encoding.JSON, text='{"a": [1, 2]}')),
        await create(service, "/echo", Payload(Encoding.BINARY, data=raw)),
        await create(service, "/echo", Payload(Encoding.SNAPPY, data=snappy.compress(raw))),
    ]
    assert await executor.run_once() == ids
    as_json, as_binary, as_snappy = [await job(service, i) for i in ids]
    assert as_json.response_encoding is Encoding.JSON and as_json.response_text == '{"a": [1, 2]}'
    for done in (as_binary, as_snappy):
        assert done.status is JobState.DONE and done.progress == 100
        assert done.response_encoding is Encoding.BINARY and done.response_data == raw


async def test_sleep_speaks_avro_and_json(service: JobService, executor: Executor) -> None:
    binary = await create(
        service, "/sleep", Payload(Encoding.BINARY, data=avro_write(SLEEP_REQUEST, {"seconds": 0}))
    )
    text = await create(service, "/sleep", Payload(Encoding.JSON, text='{"seconds": 0.01}'))
    await executor.run_once()
    done = await job(service, binary)
    assert done.response_data is not None
    assert avro_read(SLEEP_RESPONSE, done.response_data) == {"slept": 0.0}
    assert (await job(service, text)).response_text == '{"slept":0.01}'


async def test_failures_end_error_with_their_message(
    service: JobService, executor: Executor
) -> None:
    fail = await create(service, "/fail", Payload(Encoding.JSON, text='{"message": "disk full"}'))
    crash = await create(service, "/crash", Payload(Encoding.JSON, text="{}"))
    bad = await create(service, "/bad-answer", Payload(Encoding.JSON, text="{}"))
    text = await create(service, "/bad-text", Payload(Encoding.JSON, text="{}"))
    slow = await create(service, "/sleep", Payload(Encoding.JSON, text='{"seconds": -1}'))
    await executor.run_once()
    messages = {
        i: (await job(service, i)).status_map.get("error_message")
        for i in (fail, crash, bad, slow, text)
    }
    assert "not valid Unicode" in str(messages[text])  # recorded, not stuck running
    assert messages[fail] == "disk full"
    assert messages[crash] == "ZeroDivisionError: division by zero"
    assert "cannot be written as JSON" in str(messages[bad])
    assert "seconds must be between 0" in str(messages[slow])
    for i in messages:
        assert (await job(service, i)).status is JobState.ERROR


async def test_blocking_handlers_run_in_the_thread_pool(
    service: JobService, executor: Executor, gate: Gate
) -> None:
    gate.release.set()
    job_id = await create(service, "/block", Payload(Encoding.JSON, text="{}"))
    await executor.run_once()
    assert gate.threads and gate.threads[0].startswith("jobstore-handler")
    assert (await job(service, job_id)).status is JobState.DONE


async def test_claims_no_more_than_its_concurrency(
    db: Database, registry: Any, service: JobService, clock: ManualClock
) -> None:
    ex = make_executor(db, registry, clock, concurrency=2)
    for _ in range(3):
        await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    assert len(await ex.claim_once()) == 2
    assert await ex.claim_once() == []
    await ex.stop(wait_seconds=0)


async def test_a_freed_slot_claims_again_only_while_the_queue_may_hold_more(
    db: Database, registry: Any, service: JobService, clock: ManualClock
) -> None:
    echo = Payload(Encoding.JSON, text="{}")
    ex = make_executor(db, registry, clock, concurrency=2)
    try:
        await create(service, "/echo", echo)
        assert len(await ex.run_once()) == 1  # asked for 2, found 1: the queue is empty
        assert not ex._wake.is_set()  # so its freed slot starts no (empty) claim
        for _ in range(3):
            await create(service, "/echo", echo)
        ex.wake()  # what a create on this node does: new work is worth a claim
        assert ex._wake.is_set()
        ex._wake.clear()
        assert len(await ex.run_once()) == 2  # a full claim: more may be waiting
        assert ex._wake.is_set()  # so the freed slots ask the loop to claim again
    finally:
        await ex.stop(wait_seconds=0)


# -- progress, leases, rescue -----------------------------------------------------------------


async def test_tick_writes_progress(service: JobService, executor: Executor, gate: Gate) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    await wait_started(gate)
    assert (await executor.tick_once()).progress_written == 1
    assert (await job(service, job_id)).progress == 40
    assert (await executor.tick_once()).progress_written == 0  # nothing new to write
    gate.release.set()
    await executor.wait_idle()
    assert (await job(service, job_id)).progress == 100


async def test_tick_writes_all_progress_in_one_statement_and_nothing_when_idle(
    db: Database, service: JobService, executor: Executor, gate: Gate
) -> None:
    ids = [
        await create(service, "/report", Payload(Encoding.JSON, text=f'{{"percent": {p}}}'))
        for p in (25, 70, 150)
    ]
    await executor.claim_once()
    for _ in range(100):  # every handler has reported
        if len(gate.reported) == 3:
            break
        await asyncio.sleep(0.01)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert (await executor.tick_once()).progress_written == 3
        assert statements.count("UPDATE") == 1
        statements.clear()
        assert (await executor.tick_once()).progress_written == 0
        assert "UPDATE" not in statements  # nothing reported: nothing written
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert [(await job(service, i)).progress for i in ids] == [25, 70, 100]
    gate.release.set()
    await executor.wait_idle()


async def test_heartbeat_renews_leases(
    service: JobService, executor: Executor, clock: ManualClock
) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    clock.advance(20)
    assert await executor.heartbeat_once() == []
    lease = (await job(service, job_id)).lease_expires_at
    assert lease is not None and (lease - clock.now()).total_seconds() == 30


async def test_a_dead_nodes_job_is_finished_by_another_exactly_once(
    db: Database, registry: Any, service: JobService, clock: ManualClock, gate: Gate
) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    dead = make_executor(db, registry, clock, node="dead")
    await dead.claim_once()
    await wait_started(gate)
    clock.advance(31)  # "dead" stopped renewing: its lease runs out
    alive = make_executor(db, registry, clock, node="alive")
    assert (await alive.rescue_once()).requeued == [job_id]
    gate.release.set()
    assert await alive.run_once() == [job_id]
    # The old node wakes up: its heartbeat finds the job gone and it writes nothing.
    assert await dead.heartbeat_once() in ([job_id], [])
    await dead.wait_idle()
    done = await job(service, job_id)
    assert (done.status, done.attempt, done.owner) == (JobState.DONE, 2, "alive")
    await dead.stop(wait_seconds=0)
    await alive.stop(wait_seconds=0)


async def test_heartbeat_stops_a_job_that_was_taken_away(
    db: Database, registry: Any, service: JobService, clock: ManualClock, gate: Gate
) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    slow = make_executor(db, registry, clock, node="slow")
    await slow.claim_once()
    await wait_started(gate)
    clock.advance(31)
    other = make_executor(db, registry, clock, node="other")
    await other.rescue_once()
    assert [c.job_id for c in await other.claim_once()] == [job_id]
    assert await slow.heartbeat_once() == [job_id]
    await slow.wait_idle()
    assert slow.running_job_ids == []
    running = await job(service, job_id)
    assert (running.status, running.owner, running.attempt) == (JobState.RUNNING, "other", 2)
    await other.stop(wait_seconds=0)
    await slow.stop(wait_seconds=0)


async def test_start_takes_back_what_the_node_owned(
    db: Database, registry: Any, service: JobService, clock: ManualClock
) -> None:
    retry = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    once = await create(service, "/hold-once", Payload(Encoding.JSON, text="{}"))
    before = make_executor(db, registry, clock, node="n1")
    await before.claim_once()  # ... and then the process is killed: nothing is written
    after = make_executor(db, registry, clock, node="n1")
    rescued = await after.start()
    await after.stop(wait_seconds=0)
    assert rescued.requeued == [retry] and rescued.ended == [once]
    assert "restarted" in (await job(service, once)).status_map["error_message"]
    await before.stop(wait_seconds=0)


# -- cancel and stop --------------------------------------------------------------------------


async def test_cancel_stops_an_async_handler(
    service: JobService, executor: Executor, gate: Gate
) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    await wait_started(gate)
    assert await service.cancel_jobs([job_id]) == {job_id: "cancel_requested"}
    assert (await executor.tick_once()).cancels_seen == [job_id]
    await executor.wait_idle()
    cancelled = await job(service, job_id)
    assert cancelled.status is JobState.CANCELLED and cancelled.response_text is None


async def test_sleep_stops_within_a_second_of_its_cancel(
    service: JobService, executor: Executor
) -> None:
    job_id = await create(service, "/sleep", Payload(Encoding.JSON, text='{"seconds": 60}'))
    await executor.claim_once()
    await service.cancel_jobs([job_id])
    executor.request_cancel([job_id])
    await asyncio.wait_for(executor.wait_idle(), timeout=1)
    assert (await job(service, job_id)).status is JobState.CANCELLED


async def test_a_handler_ignoring_cancel_is_recorded_cancelled_after_the_grace(
    service: JobService, executor: Executor, gate: Gate, clock: ManualClock
) -> None:
    job_id = await create(service, "/block", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    await wait_started(gate)
    await service.cancel_jobs([job_id])
    assert (await executor.tick_once()).forced_cancelled == []
    clock.advance(6)
    assert (await executor.tick_once()).forced_cancelled == [job_id]
    assert (await job(service, job_id)).status is JobState.CANCELLED
    gate.release.set()  # the handler returns late; its answer is not recorded
    await executor.wait_idle()
    assert gate.saw_cancel
    late = await job(service, job_id)
    assert late.status is JobState.CANCELLED and late.response_text is None


async def test_soft_stop_lets_jobs_finish(
    service: JobService, executor: Executor, gate: Gate
) -> None:
    job_id = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    await wait_started(gate)
    asyncio.get_running_loop().call_later(0.05, gate.release.set)
    await executor.stop(wait_seconds=5)
    assert (await job(service, job_id)).status is JobState.DONE


async def test_hard_stop_gives_jobs_back(
    service: JobService, executor: Executor, gate: Gate
) -> None:
    retry = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    once = await create(service, "/hold-once", Payload(Encoding.JSON, text="{}"))
    await executor.claim_once()
    await wait_started(gate)
    await executor.stop(wait_seconds=0.01)
    requeued, ended = await job(service, retry), await job(service, once)
    assert (requeued.status, requeued.owner) == (JobState.QUEUED, None)
    assert ended.status is JobState.ERROR and "stopped" in ended.status_map["error_message"]
    assert await executor.claim_once() == []  # a stopped executor claims nothing


async def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        ExecutorConfig(node_id="")
    with pytest.raises(ConfigError):
        ExecutorConfig(node_id="n", concurrency=0)
    with pytest.raises(ConfigError):
        ExecutorConfig(node_id="n", lease_seconds=3, heartbeat_seconds=5)
    assert ExecutorConfig(node_id="n", lease_seconds=30).heartbeat_seconds == 10


@pytest.mark.parametrize("dialect", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_notify_wakes_an_idle_executor_on_another_node(
    db: Database, registry: Any, gate: Gate
) -> None:
    """PostgreSQL: a job created through another node starts at once, not at the next poll."""
    idle = Executor(db, registry, ExecutorConfig(node_id="idle", poll_seconds=30))
    elsewhere = JobService(Database(str(db.url.render_as_string(hide_password=False))), registry)
    await idle.start()
    try:
        await asyncio.sleep(0.3)  # let the listener connect; the first claim found nothing
        loop = asyncio.get_running_loop()
        started = loop.time()
        job_id = (await elsewhere.create_job("/echo", Payload(Encoding.JSON, text="{}"))).job_id
        while (await elsewhere.get_job(job_id=job_id)).status is not JobState.DONE:
            assert loop.time() - started < 5, "the idle executor was not woken by NOTIFY"
            await asyncio.sleep(0.01)
    finally:
        await idle.stop(wait_seconds=0)
        await elsewhere.db.dispose()


async def test_a_handler_calling_sys_exit_ends_its_job_not_the_node(
    db: Database, registry: Any, service: JobService, clock: ManualClock
) -> None:
    def exits(request: Any, ctx: JobContext) -> None:
        raise SystemExit(2)

    async def exits_async(request: Any, ctx: JobContext) -> None:
        raise SystemExit(3)

    registry.add(Endpoint("/exit", exits))
    registry.add(Endpoint("/exit-async", exits_async))
    ex = make_executor(db, registry, clock)
    a = await create(service, "/exit", Payload(Encoding.JSON, text="{}"))
    b = await create(service, "/exit-async", Payload(Encoding.JSON, text="{}"))
    assert await ex.run_once() == [a, b]
    for job_id, code in ((a, 2), (b, 3)):
        done = await job(service, job_id)
        assert done.status is JobState.ERROR
        assert done.status_map["error_message"] == f"SystemExit: {code}"
    await ex.stop(wait_seconds=0)


async def test_a_job_cancelled_before_it_starts_frees_its_slot(
    db: Database, registry: Any, service: JobService, clock: ManualClock
) -> None:
    ex = make_executor(db, registry, clock, concurrency=1)
    first = await create(service, "/hold", Payload(Encoding.JSON, text="{}"))
    await ex.claim_once()
    ex.request_cancel([first])  # no await since the claim: the task has not run a step yet
    await ex.wait_idle()
    await asyncio.wait_for(ex._finishes.drain(), 5)
    assert ex.running_job_ids == []
    assert (await job(service, first)).status is JobState.CANCELLED
    second = await create(service, "/echo", Payload(Encoding.JSON, text="{}"))
    assert await ex.run_once() == [second]  # the slot is free again
    await ex.stop(wait_seconds=0)


def test_timings_must_be_finite() -> None:
    with pytest.raises(ConfigError, match="finite"):
        ExecutorConfig(node_id="n", lease_seconds=float("nan"))
    with pytest.raises(ConfigError, match="finite"):
        ExecutorConfig(node_id="n", poll_seconds=float("inf"))
