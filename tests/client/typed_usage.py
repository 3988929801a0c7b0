"""What a type checker sees of jobstore.client; test_typing.py runs mypy --strict on this file.

Never imported at run time: it only has to type-check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, assert_type

from jobstore.client import (
    AsyncClient,
    Attempt,
    AttemptOutcome,
    BulkAction,
    BulkResult,
    CancelOutcome,
    CancelResult,
    Client,
    Job,
    JobPage,
    JobResult,
    JobStatus,
    Limit,
    LimitSource,
    Misfire,
    NotFound,
    Payload,
    Schedule,
    WaitTimeout,
)


def blocking(client: Client) -> None:
    job = client.create("/echo", {"a": 1}, tag="typed-1", remove_on_complete=False)
    assert_type(job, Job)
    assert_type(job.id, int)
    assert_type(job.status, JobStatus)
    assert_type(job.new, bool | None)
    assert_type(client.get(job.id, wait=1.5), Job)
    done = client.wait("typed-1", timeout=60)
    assert_type(done.response, Payload | None)
    if done.response is not None:
        assert_type(done.response.value, Any)
    assert_type(client.result(done), JobResult)
    assert_type(client.cancel(job), CancelResult)
    assert_type(client.cancel(job).outcome, CancelOutcome)
    page = client.list(status=["queued", "running"], endpoint="/echo", limit=10)
    assert_type(page, JobPage)
    assert_type(page.next_before, int | None)
    assert_type(client.iter_jobs(status="done"), Iterator[Job])
    later = client.create("/echo", run_at=datetime.now(UTC), priority=5, retry_errors=True)
    assert_type(later.run_at, datetime | None)
    assert_type(later.priority, int)
    assert_type(later.timeout_seconds, float | None)
    assert_type(later.last_error, str | None)
    client.create("/echo", delay_seconds=1.5, max_attempts=3, backoff_seconds=2, timeout_seconds=9)
    client.create("/echo", run_at="2036-01-01T00:00:00Z")
    assert_type(client.retry(later), Job)
    attempts = client.attempts("typed-1")
    assert_type(attempts, list[Attempt])
    assert_type(attempts[0].outcome, AttemptOutcome | None)
    assert_type(attempts[0].started_at, datetime)
    bulk = client.retry_matching(status="error", created_after=datetime.now(UTC))
    assert_type(bulk, BulkResult)
    assert_type(bulk.action, BulkAction)
    assert_type(bulk.outcomes, dict[str, int])
    assert_type(client.cancel_matching(endpoint="/echo").more, bool)
    try:
        client.get(424242)
    except NotFound as exc:
        assert_type(exc.status, int)
        assert_type(exc.detail, str)
    except WaitTimeout as exc:
        assert_type(exc.job, Job)
    schedule = client.create_schedule(
        "nightly",
        "/echo",
        {"a": 1},
        cron="0 2 * * *",
        timezone="Europe/Paris",
        misfire="once",
        start_at=datetime.now(UTC),
        priority=3,
        concurrency_key="customer-7",
    )
    assert_type(schedule, Schedule)
    assert_type(schedule.misfire, Misfire)
    assert_type(schedule.next_fire_at, datetime | None)
    assert_type(schedule.last_job_id, int | None)
    assert_type(client.list_schedules(), list[Schedule])
    assert_type(client.update_schedule("nightly", every_seconds=60, priority=None), Schedule)
    assert_type(client.pause_schedule("nightly").enabled, bool)
    assert_type(client.fire_schedule("nightly"), int)
    assert_type(client.delete_schedule("nightly"), None)
    assert_type(client.get(1).schedule, str | None)
    limit = client.set_limit("customer-7", 2)
    assert_type(limit, Limit)
    assert_type(limit.max_running, int | None)
    assert_type(limit.source, LimitSource | None)
    assert_type(limit.running, int)
    assert_type(limit.updated_at, datetime | None)
    assert_type(limit.updated_by, str | None)
    assert_type(client.list_limits(), list[Limit])
    assert_type(client.get_limit("customer-7").queued, int)
    assert_type(client.delete_limit("customer-7"), None)


async def asynchronous(client: AsyncClient) -> None:
    job = await client.create("/echo", payload_bytes=b"\x00", idempotency_key="typed-2")
    assert_type(job, Job)
    assert_type(await client.wait(job, timeout=None), Job)
    assert_type(await client.result(job.id), JobResult)
    assert_type(await client.cancel(job.tag), CancelResult)
    assert_type(await client.list(before=job.id), JobPage)
    assert_type(client.iter_jobs(limit=500), AsyncIterator[Job])
    assert_type(await client.create("/echo", delay_seconds=60, priority=-3), Job)
    assert_type(await client.retry(job.id), Job)
    assert_type(await client.attempts(job), list[Attempt])
    assert_type(await client.retry_matching(endpoint="/echo"), BulkResult)
    assert_type(await client.cancel_matching(status=["queued", "scheduled"]), BulkResult)
    assert_type(await client.create_schedule("s", "/echo", every_seconds=5), Schedule)
    assert_type(await client.get_schedule("s"), Schedule)
    assert_type(await client.resume_schedule("s"), Schedule)
    assert_type(await client.fire_schedule("s"), int)
    assert_type(await client.set_limit("k", 0), Limit)
    assert_type(await client.get_limit("k"), Limit)
    assert_type(await client.list_limits(), list[Limit])
    assert_type(await client.delete_limit("k"), None)
    async with AsyncClient(token="jst_x") as other:
        assert_type(other, AsyncClient)
