"""The engine, on both databases: retries with backoff, delays, priorities, timeouts, attempt
history, retry from outside, and nodes whose clocks are wrong.

Most tests drive the services one step at a time (`run_once`) with a manual clock; the ones
about real time (a delayed job starting on time, a timeout, skewed clocks) use real nodes'
clocks and wait for at most a few seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from jobstore.cli.node import Node, node_for_tests
from jobstore.core.jobs import JobService
from jobstore.domain.clock import ManualClock, SystemClock
from jobstore.domain.errors import BadOption, JobFailed, JobNotRetryable
from jobstore.domain.models import AttemptOutcome, Encoding, Job, JobQuery, JobState, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, EndpointRegistry, default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.metrics import Metrics
from jobstore.store import Database
from jobstore.store.tables import job_attempts


class Flaky:
    """Fails its first `failures` runs of each job, then answers the attempt number."""

    def __init__(self, failures: int, *, retry: bool = True) -> None:
        self.failures = failures
        self.retry = retry
        self.runs: list[int] = []

    async def handle(self, request: Any, ctx: JobContext) -> Any:
        self.runs.append(ctx.attempt)
        if ctx.attempt <= self.failures:
            raise JobFailed(f"failure {ctx.attempt}", retry=self.retry)
        return {"attempt": ctx.attempt}


async def forever(request: Any, ctx: JobContext) -> Any:
    await asyncio.sleep(3600)


class SkewedClock(SystemClock):
    """This machine's clock, `offset` seconds wrong (the monotonic clock is untouched)."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return super().now() + self.offset


@pytest.fixture
def flaky() -> Flaky:
    return Flaky(2)


@pytest.fixture
def registry(flaky: Flaky) -> EndpointRegistry:
    registry = default_registry()
    registry.add(Endpoint("/flaky", flaky.handle))
    registry.add(Endpoint("/final", Flaky(5, retry=False).handle))
    registry.add(Endpoint("/forever", forever))
    registry.add(Endpoint("/once", forever, retryable=False))
    return registry


@pytest.fixture
def service(db: Database, registry: EndpointRegistry, clock: ManualClock) -> JobService:
    return JobService(db, registry, clock=clock)


@pytest.fixture
async def executor(
    db: Database, registry: EndpointRegistry, clock: ManualClock
) -> AsyncIterator[Executor]:
    ex = Executor(db, registry, ExecutorConfig(node_id="n1", concurrency=1), clock=clock)
    yield ex
    await ex.stop(wait_seconds=0)


def payload(value: Any = None) -> Payload:
    return Payload(Encoding.JSON, text=json.dumps(value if value is not None else {}))


async def create(service: JobService, endpoint: str, **options: Any) -> int:
    return (await service.create_job(endpoint, payload(), options)).job_id


async def job(service: JobService, job_id: int) -> Job:
    return await service.get_job(job_id=job_id)


async def attempts_in_sql(db: Database, job_id: int) -> list[tuple[int, str, str | None]]:
    """(attempt, node, outcome) of each row of job_attempts, read with plain SQL."""
    async with db.reading() as conn:
        rows = await conn.execute(
            sa.select(job_attempts.c.attempt, job_attempts.c.node, job_attempts.c.outcome)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def run_due(executor: Executor, clock: ManualClock, run_at: datetime) -> list[int]:
    """Move the clock to `run_at`, let the scheduler promote, and run what is claimed."""
    clock.advance((run_at - clock.now()).total_seconds())
    await executor.scheduler.run_once()
    return await executor.run_once()


# -- retries ------------------------------------------------------------------------------


async def test_a_retried_error_ends_done_on_its_third_attempt_with_growing_gaps(
    db: Database, service: JobService, executor: Executor, clock: ManualClock, flaky: Flaky
) -> None:
    job_id = await create(service, "/flaky", retry_errors=True, backoff_seconds=10, max_attempts=5)
    gaps = []
    assert await executor.run_once() == [job_id]
    for _ in range(2):
        waiting = await job(service, job_id)
        assert waiting.status is JobState.SCHEDULED
        assert (
            waiting.run_at is not None
            and waiting.status_map["last_error"] == f"failure {waiting.attempt}"
        )
        gaps.append((waiting.run_at - clock.now()).total_seconds())
        # Not a moment early: the scheduler leaves it alone until run_at.
        clock.advance((waiting.run_at - clock.now()).total_seconds() - 0.5)
        assert await executor.scheduler.run_once() == 0
        assert await executor.run_once() == []
        assert await run_due(executor, clock, waiting.run_at) == [job_id]
    done = await job(service, job_id)
    assert done.status is JobState.DONE and done.attempt == 3
    assert json.loads(done.response_text or "") == {"attempt": 3}
    assert flaky.runs == [1, 2, 3]
    assert await attempts_in_sql(db, job_id) == [
        (1, "n1", "error"),
        (2, "n1", "error"),
        (3, "n1", "done"),
    ]
    # backoff_seconds * 2**(n-1), times 0.8 to 1.2: about 10 s, then about 20 s
    assert 8 <= gaps[0] <= 12 and 16 <= gaps[1] <= 24 and gaps[1] > gaps[0]
    history = await service.attempts(job_id)
    assert [a.error_message for a in history] == ["failure 1", "failure 2", None]
    assert all(a.finished_at is not None for a in history)


async def test_retry_false_ends_the_job_at_once(
    db: Database, service: JobService, executor: Executor
) -> None:
    job_id = await create(service, "/final", retry_errors=True, max_attempts=5)
    assert await executor.run_once() == [job_id]
    ended = await job(service, job_id)
    assert ended.status is JobState.ERROR and ended.status_map["error_message"] == "failure 1"
    assert await attempts_in_sql(db, job_id) == [(1, "n1", "error")]


async def test_max_attempts_bounds_the_retries(
    db: Database, service: JobService, executor: Executor, clock: ManualClock
) -> None:
    job_id = await create(service, "/flaky", retry_errors="true", max_attempts="2")
    assert await executor.run_once() == [job_id]
    waiting = await job(service, job_id)
    assert waiting.run_at is not None
    assert await run_due(executor, clock, waiting.run_at) == [job_id]
    ended = await job(service, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 2
    assert [o for _, _, o in await attempts_in_sql(db, job_id)] == ["error", "error"]


async def test_without_retry_errors_a_handler_error_is_final(
    db: Database, service: JobService, executor: Executor
) -> None:
    job_id = await create(service, "/flaky", max_attempts=5)
    assert await executor.run_once() == [job_id]
    assert (await job(service, job_id)).status is JobState.ERROR
    assert await attempts_in_sql(db, job_id) == [(1, "n1", "error")]


async def test_a_non_retryable_endpoint_refuses_retry_errors(service: JobService) -> None:
    with pytest.raises(BadOption) as refused:
        await create(service, "/once", retry_errors=True)
    assert refused.value.option == "retry_errors"


async def test_a_cancel_during_the_backoff_ends_the_job_cancelled(
    db: Database, service: JobService, executor: Executor
) -> None:
    job_id = await create(service, "/flaky", retry_errors=True, backoff_seconds=60)
    await executor.run_once()
    assert (await job(service, job_id)).status is JobState.SCHEDULED
    assert await service.cancel_jobs([job_id]) == {job_id: "cancelled"}
    assert (await job(service, job_id)).status is JobState.CANCELLED


# -- delays and priorities ----------------------------------------------------------------


async def test_a_delayed_job_waits_scheduled_until_its_time(
    service: JobService, executor: Executor, clock: ManualClock
) -> None:
    job_id = await create(service, "/echo", delay_seconds=30)
    at = clock.now() + timedelta(seconds=30)
    scheduled = await job(service, job_id)
    assert scheduled.status is JobState.SCHEDULED and scheduled.run_at == at
    clock.advance(29.9)
    assert await executor.scheduler.run_once() == 0
    assert await executor.run_once() == []
    assert await run_due(executor, clock, at) == [job_id]
    assert (await job(service, job_id)).status is JobState.DONE


async def test_run_at_in_the_past_queues_at_once(
    service: JobService, executor: Executor, clock: ManualClock
) -> None:
    job_id = await create(service, "/echo", run_at="2020-01-01T00:00:00Z")
    assert (await job(service, job_id)).status is JobState.QUEUED
    assert await executor.run_once() == [job_id]


async def test_higher_priority_starts_first_and_equals_keep_their_order(
    service: JobService, executor: Executor
) -> None:
    low = await create(service, "/echo")
    first_high = await create(service, "/echo", priority=10)
    second_high = await create(service, "/echo", priority="10")
    urgent = await create(service, "/echo", priority=1000)
    order = [await executor.run_once() for _ in range(4)]  # one slot: one job per claim
    assert order == [[urgent], [first_high], [second_high], [low]]


# -- timeouts -------------------------------------------------------------------------------


async def test_a_run_past_its_timeout_ends_timeout_and_is_retried_by_the_same_rules(
    db: Database, service: JobService, executor: Executor, clock: ManualClock
) -> None:
    job_id = await create(
        service, "/forever", timeout_seconds=0.2, retry_errors=True, max_attempts=2
    )
    assert await asyncio.wait_for(executor.run_once(), 10) == [job_id]
    waiting = await job(service, job_id)
    assert waiting.status is JobState.SCHEDULED
    assert waiting.status_map == {"last_error": "timed out after 0.2 s"}
    assert waiting.run_at is not None
    clock.advance((waiting.run_at - clock.now()).total_seconds())
    await executor.scheduler.run_once()
    assert await asyncio.wait_for(executor.run_once(), 10) == [job_id]
    ended = await job(service, job_id)
    assert ended.status is JobState.ERROR
    assert ended.status_map["error_message"] == "timed out after 0.2 s"
    assert await attempts_in_sql(db, job_id) == [(1, "n1", "timeout"), (2, "n1", "timeout")]


# -- retry from outside ---------------------------------------------------------------------


async def test_retry_runs_a_failed_job_again_as_a_new_attempt(
    db: Database, service: JobService, executor: Executor
) -> None:
    job_id = await create(service, "/flaky", max_attempts=1)
    await executor.run_once()
    assert (await job(service, job_id)).status is JobState.ERROR
    again = await service.retry_job(job_id)
    assert again.status is JobState.QUEUED and again.max_attempts == 2
    assert again.status_map == {} and again.finished_at is None
    assert await executor.run_once() == [job_id]
    assert (await job(service, job_id)).status is JobState.ERROR  # /flaky fails twice
    await service.retry_job(job_id)
    await executor.run_once()
    done = await job(service, job_id)
    assert done.status is JobState.DONE and done.attempt == 3
    assert [o for _, _, o in await attempts_in_sql(db, job_id)] == ["error", "error", "done"]


async def test_retry_refuses_jobs_that_did_not_fail(
    service: JobService, executor: Executor
) -> None:
    queued = await create(service, "/echo")
    with pytest.raises(JobNotRetryable):
        await service.retry_job(queued)
    await executor.run_once()
    with pytest.raises(JobNotRetryable) as refused:
        await service.retry_job(queued)  # done
    assert refused.value.status == "done"


async def test_bulk_retry_and_cancel_act_on_the_filtered_jobs_only(
    service: JobService, executor: Executor
) -> None:
    failed = [await create(service, "/flaky", max_attempts=1) for _ in range(3)]
    for _ in failed:
        await executor.run_once()
    waiting = [await create(service, "/echo", delay_seconds=600) for _ in range(2)]
    other = await create(service, "/forever")
    retried = await service.bulk_action("retry", JobQuery(endpoint="/flaky"))
    assert retried.matched == 3 and retried.outcomes == {"retried": 3} and not retried.more
    assert {(await job(service, i)).status for i in failed} == {JobState.QUEUED}
    cancelled = await service.bulk_action("cancel", JobQuery(endpoint="/echo"))
    assert cancelled.outcomes == {"cancelled": 2}
    assert {(await job(service, i)).status for i in waiting} == {JobState.CANCELLED}
    assert (await job(service, other)).status is JobState.QUEUED


# -- clocks ---------------------------------------------------------------------------------


@pytest.fixture
async def nodes(db: Database) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        await node.executor.stop(wait_seconds=0)  # a /forever job would hold a soft stop 10 s
        await node.stop()


async def test_a_delayed_job_starts_within_a_second_of_its_time(
    db: Database, registry: EndpointRegistry, nodes: list[Node]
) -> None:
    node = node_for_tests(db, registry=registry)
    await node.start()
    nodes.append(node)
    job_id = await create(node.jobs, "/echo", delay_seconds=1.2)
    ended = await node.jobs.wait_for_job(job_id=job_id, wait_seconds=10)
    assert ended.status is JobState.DONE
    assert ended.run_at is not None and ended.started_at is not None
    late = (ended.started_at - ended.run_at).total_seconds()
    assert 0 <= late < 1.0, late


async def test_a_job_delayed_through_another_node_starts_within_a_second_of_its_time(
    db: Database, registry: EndpointRegistry, nodes: list[Node]
) -> None:
    """The node that runs it was not told: it finds the job by its scheduler's poll."""
    runner = node_for_tests(db, node_id="runner", registry=registry)
    await runner.start()
    nodes.append(runner)
    api_only = node_for_tests(db, node_id="api", registry=registry)  # never started
    job_id = await create(api_only.jobs, "/echo", delay_seconds=2.5)
    ended = await runner.jobs.wait_for_job(job_id=job_id, wait_seconds=10)
    assert ended.status is JobState.DONE and ended.owner == "runner"
    assert ended.run_at is not None and ended.started_at is not None
    late = (ended.started_at - ended.run_at).total_seconds()
    assert 0 <= late < 1.0, late


async def test_a_retry_without_backoff_runs_at_once_not_at_the_next_poll(
    db: Database, registry: EndpointRegistry, nodes: list[Node], flaky: Flaky
) -> None:
    node = node_for_tests(db, registry=registry, poll_seconds=30)
    await node.start()
    nodes.append(node)
    job_id = await create(node.jobs, "/flaky", retry_errors=True, backoff_seconds=0)
    ended = await node.jobs.wait_for_job(job_id=job_id, wait_seconds=10)
    assert ended.status is JobState.DONE and ended.attempt == 3
    history = await node.jobs.attempts(job_id)
    assert history[-1].started_at - history[0].started_at < timedelta(seconds=5)


async def test_a_node_with_a_wrong_clock_neither_steals_live_jobs_nor_starts_jobs_early(
    db: Database, registry: EndpointRegistry, nodes: list[Node]
) -> None:
    healthy = node_for_tests(db, node_id="healthy", registry=registry, lease_seconds=5)
    await healthy.start()
    nodes.append(healthy)
    live = await create(healthy.jobs, "/forever")
    later = await create(healthy.jobs, "/echo", delay_seconds=30)
    for _ in range(100):
        if (await job(healthy.jobs, live)).status is JobState.RUNNING:
            break
        await asyncio.sleep(0.05)
    assert (await job(healthy.jobs, live)).owner == "healthy"

    # Sixty seconds ahead: by its own clock the lease ran out and the delayed job is due.
    ahead = node_for_tests(db, node_id="ahead", registry=registry, local_clock=SkewedClock(60))
    assert ahead.database_clock is not None
    await ahead.database_clock.start()
    try:
        assert abs((ahead.jobs.clock.now() - datetime.now(UTC)).total_seconds()) < 2
        assert (await ahead.executor.rescue_once()).total == 0
        assert await ahead.executor.scheduler.run_once() == 0
    finally:
        await ahead.database_clock.stop()
    assert (await job(healthy.jobs, live)).owner == "healthy"
    assert (await job(healthy.jobs, later)).status is JobState.SCHEDULED

    # The same node trusting its own clock would have done both: the skew is real.
    trusting = node_for_tests(db, node_id="trusting", registry=registry, clock=SkewedClock(60))
    assert await trusting.executor.scheduler.run_once() == 1
    rescued = await trusting.executor.rescue_once()
    assert live in rescued.requeued


# -- history in SQL -------------------------------------------------------------------------


async def test_a_lost_node_attempt_is_closed_lost_by_the_rescuer(
    db: Database, service: JobService, registry: EndpointRegistry, clock: ManualClock
) -> None:
    job_id = await create(service, "/echo")
    dead = Executor(db, registry, ExecutorConfig(node_id="dead", lease_seconds=30), clock=clock)
    async with db.transaction() as conn:
        await db.jobs.job_claim(
            conn,
            node="dead",
            endpoints=["/echo"],
            limit=1,
            now=clock.now(),
            lease_until=clock.now() + timedelta(seconds=30),
        )
    clock.advance(31)
    other = Executor(db, registry, ExecutorConfig(node_id="other"), clock=clock)
    assert (await other.rescue_once()).requeued == [job_id]
    assert await other.run_once() == [job_id]
    assert await attempts_in_sql(db, job_id) == [(1, "dead", "lost"), (2, "other", "done")]
    lost = (await service.attempts(job_id))[0]
    assert lost.outcome is AttemptOutcome.LOST and "lease expired" in (lost.error_message or "")
    await dead.stop(wait_seconds=0)
    await other.stop(wait_seconds=0)


async def test_attempts_go_with_their_job(
    db: Database, service: JobService, executor: Executor, clock: ManualClock
) -> None:
    removed = (
        await service.create_job("/echo", payload(), {"remove_job_on_complete": "true"})
    ).job_id
    kept = await create(service, "/echo")
    await executor.run_once()
    await executor.run_once()
    assert await attempts_in_sql(db, removed) == []
    assert await attempts_in_sql(db, kept) == [(1, "n1", "done")]
    async with db.transaction() as conn:  # retention
        pruned = await db.jobs.job_prune_ids(
            conn, JobState.DONE, finished_before=clock.now() + timedelta(days=1), limit=10
        )
    assert kept in pruned  # with the removed job's tombstone
    assert await attempts_in_sql(db, kept) == []


# -- metrics --------------------------------------------------------------------------------


async def test_retries_timeouts_and_lost_attempts_are_counted_per_endpoint(
    db: Database, service: JobService, registry: EndpointRegistry, clock: ManualClock
) -> None:
    metrics = Metrics()
    ex = Executor(
        db, registry, ExecutorConfig(node_id="n1", concurrency=1), clock=clock, metrics=metrics
    )
    try:
        flaky_id = await create(service, "/flaky", retry_errors=True, max_attempts=3)
        for _ in range(3):
            waiting = await job(service, flaky_id)
            if waiting.run_at is not None:
                clock.advance((waiting.run_at - clock.now()).total_seconds())
                await ex.scheduler.run_once()
            await ex.run_once()
        await create(service, "/forever", timeout_seconds=0.1)
        await asyncio.wait_for(ex.run_once(), 10)
        await create(service, "/echo")
        async with db.transaction() as conn:  # a node that dies holding it
            await db.jobs.job_claim(
                conn, node="dead", endpoints=["/echo"], limit=1, now=clock.now(),
                lease_until=clock.now() + timedelta(seconds=1),
            )  # fmt: skip
        clock.advance(2)
        await ex.rescue_once()
        await create(service, "/echo", delay_seconds=60)
        async with db.reading() as conn:
            text = metrics.render(await db.jobs.job_active_counts(conn)).decode()
    finally:
        await ex.stop(wait_seconds=0)

    def value(sample: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(sample + " ")]
        assert len(lines) == 1, (sample, text)
        return float(lines[0].rsplit(" ", 1)[1])

    assert value('jobstore_job_attempts_total{endpoint="/flaky",outcome="error"}') == 2
    assert value('jobstore_job_attempts_total{endpoint="/flaky",outcome="done"}') == 1
    assert value('jobstore_job_retries_total{endpoint="/flaky"}') == 2
    assert value('jobstore_job_attempts_total{endpoint="/forever",outcome="timeout"}') == 1
    assert value('jobstore_job_attempts_total{endpoint="/echo",outcome="lost"}') == 1
    assert value("jobstore_scheduled_jobs") == 1
    assert value('jobstore_jobs_finished_total{endpoint="/flaky",status="done"}') == 1
