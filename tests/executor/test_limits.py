"""The executor's claims with concurrency limits, on both databases: keyed and unkeyed work
share the free slots, a key at its limit waits without being claimed, and a job that ends frees
its key's slot on this node at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobstore.core.jobs import JobService
from jobstore.core.limits import LimitService
from jobstore.domain.clock import ManualClock
from jobstore.domain.limits import EndpointLimits
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, EndpointRegistry, default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.metrics import Metrics
from jobstore.store import Database


class Gate:
    """Handlers that run until the test lets them finish."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.ran: list[int] = []

    async def handle(self, request: Any, ctx: JobContext) -> Any:
        self.ran.append(ctx.job_id)
        await self.release.wait()
        return {}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate) -> EndpointRegistry:
    registry = default_registry()
    registry.add(Endpoint("/work", gate.handle))
    registry.add(Endpoint("/capped", gate.handle, limits=EndpointLimits(global_limit=1)))
    return registry


@pytest.fixture
def service(db: Database, registry: EndpointRegistry, clock: ManualClock) -> JobService:
    return JobService(db, registry, clock=clock)


@pytest.fixture
async def executor(
    db: Database, registry: EndpointRegistry, clock: ManualClock
) -> AsyncIterator[Executor]:
    ex = Executor(
        db,
        registry,
        ExecutorConfig(node_id="n1", concurrency=4, poll_seconds=3600),
        clock=clock,
        metrics=Metrics(),
    )
    yield ex
    await ex.stop(wait_seconds=0)


async def create(service: JobService, endpoint: str = "/work", **options: Any) -> int:
    payload = Payload(Encoding.JSON, text=json.dumps({}))
    return (await service.create_job(endpoint, payload, options)).job_id


async def test_keyed_and_unkeyed_backlogs_share_the_slots(
    service: JobService, executor: Executor
) -> None:
    plain = [await create(service) for _ in range(10)]
    keyed = [await create(service, concurrency_key="A") for _ in range(10)]
    executor.wake()
    claimed = {c.job_id for c in await executor.claim_once()}
    assert claimed == {*keyed[:2], *plain[:2]}


async def test_a_key_at_its_limit_waits_and_its_slot_frees_when_a_job_ends(
    service: JobService, executor: Executor, gate: Gate, clock: ManualClock
) -> None:
    await LimitService(service, clock).set("A", 1)
    first, second = [await create(service, concurrency_key="A") for _ in range(2)]
    executor.wake()
    assert [c.job_id for c in await executor.claim_once()] == [first]
    assert await executor.claim_once() == []  # held back: not claimed, not spinning
    assert executor.metrics is not None
    held = executor.metrics.render({}).decode()
    assert "jobstore_jobs_held_back_total 1.0" in held
    gate.release.set()
    await executor.wait_idle()  # the first ends: its key's slot is free on this node
    assert [c.job_id for c in await executor.claim_once()] == [second]


async def test_a_global_limit_caps_an_endpoint_on_this_node(
    service: JobService, executor: Executor, gate: Gate
) -> None:
    capped = [await create(service, "/capped") for _ in range(3)]
    executor.wake()
    assert [c.job_id for c in await executor.claim_once()] == capped[:1]
    assert await executor.claim_once() == []
    gate.release.set()
    await executor.wait_idle()
    assert [c.job_id for c in await executor.claim_once()] == capped[1:2]


async def test_only_a_limited_create_makes_the_next_claim_look_at_keyed_jobs(
    db: Database, service: JobService, executor: Executor
) -> None:
    """A plain create wakes the plain claim only (no extra statement per claim while plain
    jobs stream in); a keyed one, the limited claim too."""
    assert await executor.claim_once() == []  # the first claim looks: nothing keyed yet
    keyed = await create(service, concurrency_key="A")  # the service tells no executor
    executor.wake(limited=False)
    assert await executor.claim_once() == []
    executor.wake(limited=True)
    assert [c.job_id for c in await executor.claim_once()] == [keyed]


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_other_nodes_hear_whether_a_create_was_limited(
    db: Database, service: JobService
) -> None:
    heard: list[bool] = []
    task = asyncio.create_task(db.listen_for_new_jobs(heard.append))
    try:
        for _ in range(100):  # until the LISTEN is checked and trusted
            if db.hears_new_jobs:
                break
            await asyncio.sleep(0.05)
        heard.clear()  # a new LISTEN first assumes it missed something of every kind
        await create(service)
        await create(service, concurrency_key="A")
        await create(service, "/capped")
        for _ in range(100):
            if len(heard) >= 3:
                break
            await asyncio.sleep(0.02)
        assert heard == [False, True, True]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_wake_up_for_plain_work_does_not_look_at_keyed_jobs_but_an_idle_poll_does(
    db: Database, registry: EndpointRegistry, service: JobService, clock: ManualClock
) -> None:
    """The safety net for limited jobs freed on other nodes runs at idle polls, not in the
    claims that plain jobs wait for."""
    ex = Executor(db, registry, ExecutorConfig(node_id="n2", poll_seconds=0.05), clock=clock)
    try:
        assert await ex.claim_once() == []  # the first claim looks: nothing keyed yet
        keyed = await create(service, concurrency_key="A")  # told to no executor
        await asyncio.sleep(0.1)  # a poll interval has passed
        assert await ex.claim_once(woken=True) == []
        assert [c.job_id for c in await ex.claim_once(woken=False)] == [keyed]
    finally:
        await ex.stop(wait_seconds=0)
