"""Stopping: a loop that dies while a stop is under way must not hang that stop."""

from __future__ import annotations

import asyncio

from jobstore.cli.node import node_for_tests
from jobstore.domain.models import Encoding, Payload
from jobstore.store import Database


class LoopDied(BaseException):
    """What only a broken loop raises (loops catch every Exception)."""


async def test_a_loop_dying_during_a_soft_stop_does_not_hang_it(db: Database) -> None:
    node = node_for_tests(db, node_id="stop-test")
    executor = node.executor
    await executor.start()
    # Let PostgreSQL's LISTEN connection finish opening: cancelled mid-connect, asyncpg
    # leaves its socket to the garbage collector (a warning, not what this test is about).
    await asyncio.sleep(0.2)
    await node.jobs.create_job("/sleep", Payload(Encoding.JSON, text='{"seconds": 1}'))
    for _ in range(200):  # the executor's own loop claims it
        if executor.running_job_ids:
            break
        await asyncio.sleep(0.05)
    assert executor.running_job_ids  # the soft stop has a job to wait for
    stopping = asyncio.create_task(executor.stop(wait_seconds=10))
    await asyncio.sleep(0)  # the stop is under way, waiting for the job

    async def dies() -> None:
        raise LoopDied

    await executor._supervise("test-loop", dies)
    await asyncio.wait_for(stopping, timeout=20)  # hung forever before the fix
    assert isinstance(executor.failure, LoopDied)
    assert executor.stopped.is_set()
