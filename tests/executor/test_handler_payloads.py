"""What a handler may take and give beyond values: the stored payload itself (`takes_payload`),
a `Payload` stored as it is, and JobFailed(retry_after=...) replacing the backoff."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobstore.core.jobs import JobService
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import JobFailed
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database

seen: list[Payload] = []


async def echo_payload(request: Payload, ctx: JobContext) -> Payload:
    seen.append(request)
    return Payload(Encoding.BINARY, data=b"\x89PNG " + (request.text or "").encode())


async def busy(request: object, ctx: JobContext) -> None:
    raise JobFailed("come back later", retry_after=42)


@pytest.fixture
async def parts(db: Database, clock: ManualClock) -> AsyncIterator[tuple[JobService, Executor]]:
    registry = default_registry()
    registry.add(Endpoint("/payload", echo_payload, takes_payload=True))
    registry.add(Endpoint("/busy", busy))
    service = JobService(db, registry, clock=clock)
    executor = Executor(db, registry, ExecutorConfig(node_id="n1", concurrency=1), clock=clock)
    yield service, executor
    await executor.stop(wait_seconds=0)


async def test_a_handler_gets_the_stored_payload_and_its_payload_is_stored_as_it_is(
    parts: tuple[JobService, Executor],
) -> None:
    service, executor = parts
    seen.clear()
    request = Payload(Encoding.JSON, text='{"n": 1}')
    job_id = (await service.create_job("/payload", request)).job_id
    assert await executor.run_once() == [job_id]
    done = await service.get_job(job_id=job_id)
    assert seen == [request]
    assert done.status is JobState.DONE
    # A JSON job's answer kept as bytes: what the handler said, not JSON text.
    assert done.response_encoding is Encoding.BINARY
    assert done.response_data == b'\x89PNG {"n": 1}'


async def test_retry_after_is_the_wait_before_the_next_attempt(
    parts: tuple[JobService, Executor], clock: ManualClock
) -> None:
    service, executor = parts
    options = {"retry_errors": True, "backoff_seconds": 1, "max_attempts": 3}
    job_id = (await service.create_job("/busy", Payload(Encoding.JSON, text="{}"), options)).job_id
    assert await executor.run_once() == [job_id]
    waiting = await service.get_job(job_id=job_id)
    assert waiting.status is JobState.SCHEDULED and waiting.run_at is not None
    assert (waiting.run_at - clock.now()).total_seconds() == pytest.approx(42)
