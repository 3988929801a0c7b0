"""What a type checker sees of jobstore.client; test_typing.py runs mypy --strict on this file.

Never imported at run time: it only has to type-check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, assert_type

from jobstore.client import (
    AsyncClient,
    CancelOutcome,
    CancelResult,
    Client,
    Job,
    JobPage,
    JobResult,
    JobStatus,
    NotFound,
    Payload,
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
    try:
        client.get(424242)
    except NotFound as exc:
        assert_type(exc.status, int)
        assert_type(exc.detail, str)
    except WaitTimeout as exc:
        assert_type(exc.job, Job)


async def asynchronous(client: AsyncClient) -> None:
    job = await client.create("/echo", payload_bytes=b"\x00", idempotency_key="typed-2")
    assert_type(job, Job)
    assert_type(await client.wait(job, timeout=None), Job)
    assert_type(await client.result(job.id), JobResult)
    assert_type(await client.cancel(job.tag), CancelResult)
    assert_type(await client.list(before=job.id), JobPage)
    assert_type(client.iter_jobs(limit=500), AsyncIterator[Job])
    async with AsyncClient(token="jst_x") as other:
        assert_type(other, AsyncClient)
