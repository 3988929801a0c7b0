"""Fixtures of the Kinetica facade's in-process tests: the app over the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobstore.api.kinetica import KineticaConfig
from jobstore.cli.node import node_for_tests
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import JobFailed
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from tests.support.kinetica import WIRES, Api, Env, kinetica_env

FIRST_ATTEMPT_FAILS = "the first attempt fails"


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """The wire encoding a test speaks: json, binary or snappy."""
    return str(request.param)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for e in kinetica_env(db):
        yield e


@pytest.fixture
async def small_env(db: Database) -> AsyncIterator[Env]:
    """The app with a 1 KiB request body limit."""
    async for e in kinetica_env(db, KineticaConfig(max_body_bytes=1024)):
        yield e


@endpoint("/flaky", raw=True)
async def flaky(request: Any, ctx: JobContext) -> Any:
    """Fail the first attempt; answer the request unchanged on any later one."""
    if ctx.attempt == 1:
        raise JobFailed(FIRST_ATTEMPT_FAILS)
    return request


@endpoint("/once", raw=True, retryable=False)
async def once(request: Any, ctx: JobContext) -> Any:
    """Never run twice: its jobs cannot ask for retry_errors."""
    return request


@pytest.fixture
async def timed_env(db: Database, clock: ManualClock) -> AsyncIterator[Env]:
    """As `env`, on the test's ManualClock: time moves only when the test says so
    (`clock.advance`), and due jobs are queued by `executor.scheduler.run_once()`. Besides the
    built-in endpoints it has /flaky and /once."""
    registry = default_registry()
    registry.add(getattr(flaky, MARK))
    registry.add(getattr(once, MARK))
    node = node_for_tests(db, node_id="test", lease_seconds=30, clock=clock, registry=registry)
    app = node.app(run_background=False, kinetica=KineticaConfig())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(db, node.executor, node.jobs, Api(client), client)
    finally:
        await node.executor.stop()
