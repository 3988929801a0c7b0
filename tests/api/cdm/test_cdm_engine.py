"""CDM submissions in the engine's `scheduled` state: a run that failed and waits for its next
attempt has not started again, so CDM reads it BOOTING, as a queued one.

In-process, on each database, on a ManualClock; the executor and the scheduler are driven by
the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobstore.api.cdm.routes import STATUS
from jobstore.cli.node import Node, node_for_tests
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import JobFailed
from jobstore.domain.models import JobState
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database

BASE = "/v1.1/p1/clusters/c1/cdm"
NOT_READY = "the source was not ready"


@endpoint("/flaky", retry_errors=True, backoff_seconds=60)
async def flaky(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Fail the first attempt (its jobs retry errors by default); succeed on the next."""
    if ctx.attempt == 1:
        raise JobFailed(NOT_READY)
    return {"attempt": ctx.attempt}


@dataclass
class CdmNode:
    node: Node
    client: httpx.AsyncClient  # sends alice's p1 token

    async def status(self, name: str) -> dict[str, Any]:
        response = await self.client.get(f"{BASE}/job/{name}/status")
        assert response.status_code == 200, response.text
        [submission] = response.json()["submissions"]
        assert isinstance(submission, dict)
        return submission

    async def history(self, name: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"{BASE}/submissions", params={"jname": name})
        assert response.status_code == 200, response.text
        submissions: list[dict[str, Any]] = response.json()["submissions"]
        return submissions

    async def job_status(self, job_id: int) -> str:
        async with self.node.db.reading() as conn:
            query = sa.text("SELECT status FROM jobs WHERE job_id = :i")
            return str((await conn.execute(query, {"i": job_id})).scalar_one())


@pytest.fixture
async def cdm(db: Database, clock: ManualClock) -> AsyncIterator[CdmNode]:
    registry = default_registry()
    registry.add(getattr(flaky, MARK))
    node = node_for_tests(db, node_id="cdm-engine", clock=clock, registry=registry)
    await node.accounts.add_user("alice", None)
    _, token = await node.accounts.create_token("alice", "p1")
    app = node.app(run_background=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"X-Auth-Token": token}
        ) as client:
            yield CdmNode(node, client)
    finally:
        await node.executor.stop()


def test_every_jobstore_state_has_a_cdm_status() -> None:
    assert set(STATUS) == {state.value for state in JobState}
    assert STATUS["scheduled"] == "BOOTING"


def _definition(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "driver-config-values": {
            "configs": [
                {
                    "name": "jobstoreConfig",
                    "inputs": [{"name": "jobstoreConfig.endpoint", "value": "/flaky"}],
                }
            ]
        },
    }


async def test_submission_waiting_to_retry_reads_booting(cdm: CdmNode, clock: ManualClock) -> None:
    job = _definition("retrying")
    assert (await cdm.client.post(f"{BASE}/job", json={"jobs": [job]})).status_code == 200
    started = await cdm.client.put(f"{BASE}/job/retrying/start")
    assert started.status_code == 200, started.text
    [submission] = started.json()["submissions"]
    job_id = submission["submission-id"]
    assert submission["status"] == "BOOTING"

    # Attempt 1 fails; the job waits 48 to 72 s (60 s, +-20 %) to run again.
    executor = cdm.node.executor
    assert await executor.run_once() == [job_id]
    assert await cdm.job_status(job_id) == "scheduled"
    for view in (await cdm.status("retrying"), *(await cdm.history("retrying"))):
        assert view["submission-id"] == job_id
        assert (view["status"], view["progress"]) == ("BOOTING", 0)
        assert "error-summary" not in view and "counters" not in view
    # The same row through Kinetica: not finished, so RUNNING.
    got = await cdm.client.post("/get/job", json={"job_id": job_id, "options": {}})
    assert json.loads(got.json()["data_str"])["job_status"] == "RUNNING"

    clock.advance(72)
    assert await executor.scheduler.run_once() == 1
    assert await executor.run_once() == [job_id]
    final = await cdm.status("retrying")
    assert (final["submission-id"], final["status"], final["progress"]) == (
        job_id,
        "SUCCEEDED",
        100,
    )
    assert await cdm.job_status(job_id) == "done"


async def test_a_submission_waiting_to_retry_can_be_stopped_and_is_not_started_twice(
    cdm: CdmNode,
) -> None:
    """Waiting to retry is not finished: start refuses a second run, stop cancels it."""
    created = await cdm.client.post(f"{BASE}/job", json={"jobs": [_definition("waiting")]})
    assert created.status_code == 200
    started = await cdm.client.put(f"{BASE}/job/waiting/start")
    [submission] = started.json()["submissions"]
    job_id = submission["submission-id"]
    assert await cdm.node.executor.run_once() == [job_id]
    assert await cdm.job_status(job_id) == "scheduled"

    again = await cdm.client.put(f"{BASE}/job/waiting/start")
    assert again.status_code == 400, again.text
    assert [s["submission-id"] for s in await cdm.history("waiting")] == [job_id]

    stopped = await cdm.client.put(f"{BASE}/job/waiting/stop")
    assert stopped.status_code == 200, stopped.text
    assert await cdm.job_status(job_id) == "cancelled"
