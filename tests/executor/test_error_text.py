"""A handler's error message is recorded whatever it contains: NUL and lone surrogates, which
neither database stores, are written out as backslash escapes. Before, the write was refused,
and the job stayed running until its lease ran out and it ran again."""

from __future__ import annotations

from typing import Any

import pytest

from jobstore.cli.node import node_for_tests
from jobstore.domain.errors import JobFailed
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.registry import Endpoint, default_registry
from jobstore.store import Database


async def raises_value_error(request: Any, ctx: JobContext) -> Any:
    raise ValueError("bad\x00byte")


async def fails_with_surrogate(request: Any, ctx: JobContext) -> Any:
    raise JobFailed("half a pair: \udc80", retry=False)


@pytest.mark.parametrize(
    ("handler", "recorded"),
    [
        (raises_value_error, "ValueError: bad\\x00byte"),
        (fails_with_surrogate, "half a pair: \\udc80"),
    ],
)
async def test_an_unstorable_error_message_is_recorded_escaped(
    db: Database, handler: Any, recorded: str
) -> None:
    registry = default_registry()
    registry.add(Endpoint("/bad-text", handler))
    node = node_for_tests(db, node_id="text-test", registry=registry)
    try:
        created = await node.jobs.create_job("/bad-text", Payload(Encoding.JSON, text="{}"))
        assert await node.executor.run_once() == [created.job_id]
        job = await node.jobs.get_job(job_id=created.job_id)
        assert job.status is JobState.ERROR
        assert job.status_map["error_message"] == recorded
        [attempt] = await node.jobs.attempts(created.job_id)
        assert attempt.error_message == recorded
    finally:
        await node.executor.stop()
