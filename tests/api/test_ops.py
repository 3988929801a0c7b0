"""Operations: /healthz, /readyz, Prometheus /metrics, JSON logs, and long polls in the core.

In-process against the real app and a real database (SQLite and PostgreSQL); the JSON log test
starts a real `jobstore serve`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobstore.api.app import create_app
from jobstore.cli.logs import JsonFormatter
from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.endpoints.registry import default_registry
from jobstore.metrics import MAX_ENDPOINT_LABELS, OTHER_ENDPOINTS, Metrics
from jobstore.store import Database
from jobstore.store.migrate import downgrade_to, head_revision
from tests.support.e2e import Server, closed_port


class Node:
    """One node in-process: service, executor (not started; tests drive it) and app."""

    def __init__(self, db: Database) -> None:
        node = node_for_tests(db, node_id="ops-test", concurrency=4, metrics=True)
        assert node.metrics is not None
        self.metrics = node.metrics
        self.executor = node.executor
        self.service = node.jobs
        self.app = node.app(run_background=False)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://node"
        )

    async def create(self, endpoint: str, body: str) -> int:
        result = await self.service.create_job(endpoint, Payload(Encoding.JSON, text=body))
        return result.job_id


@pytest.fixture
async def node(db: Database) -> AsyncIterator[Node]:
    n = Node(db)
    try:
        yield n
    finally:
        await n.client.aclose()
        await n.executor.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by Prometheus's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_healthz_and_readyz(node: Node) -> None:
    health = await node.client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await node.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["revision"] == head_revision()


async def test_readyz_refuses_a_schema_behind_head(db: Database, node: Node) -> None:
    await downgrade_to(db, "0004")
    ready = await node.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert "0004" in ready.json()["checks"]["schema"]
    assert (await node.client.get("/healthz")).status_code == 200  # the process is still up


async def test_readyz_when_the_database_is_gone() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere")  # nothing listens
    try:
        app = create_app(JobService(db, default_registry()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://n") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("unreachable")
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await db.dispose()


async def test_metrics_count_jobs_queue_and_http(node: Node) -> None:
    for _ in range(3):
        await node.create("/echo", '{"x": 1}')
    await node.create("/fail", '{"message": "boom"}')
    before = samples((await node.client.get("/metrics")).text)
    assert before[("jobstore_queue_depth", ())] == 4
    assert before[("jobstore_running_jobs", ())] == 0
    assert before[("jobstore_jobs_created_total", (("endpoint", "/echo"),))] == 3
    assert before[("jobstore_jobs_created_total", (("endpoint", "/fail"),))] == 1

    ran = await node.executor.run_once()
    assert len(ran) == 4
    response = await node.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    assert after[("jobstore_queue_depth", ())] == 0
    done = (("endpoint", "/echo"), ("status", "done"))
    error = (("endpoint", "/fail"), ("status", "error"))
    assert after[("jobstore_jobs_finished_total", done)] == 3
    assert after[("jobstore_jobs_finished_total", error)] == 1
    assert after[("jobstore_job_duration_seconds_count", done)] == 3
    assert after[("jobstore_claim_duration_seconds_count", ())] >= 1
    assert after[("jobstore_jobs_claimed_total", ())] == 4
    # HTTP latency is labelled by route template, never by raw path.
    http = (("method", "GET"), ("route", "/metrics"), ("status", "200"))
    assert after[("jobstore_http_request_duration_seconds_count", http)] == 1


async def test_metrics_never_label_by_raw_path(node: Node) -> None:
    await node.client.get("/no/such/page")  # only the Kinetica POST catch-all matches: 405
    await node.client.put("/healthz")  # a fixed route, wrong method
    text = (await node.client.get("/metrics")).text
    found = samples(text)
    catch_all = (("method", "GET"), ("route", "/{path:path}"), ("status", "405"))
    assert found[("jobstore_http_request_duration_seconds_count", catch_all)] == 1
    wrong_method = (("method", "PUT"), ("route", "/healthz"), ("status", "405"))
    assert found[("jobstore_http_request_duration_seconds_count", wrong_method)] == 1
    assert "/no/such/page" not in text


async def test_wait_for_job_wakes_when_the_executor_finishes(node: Node) -> None:
    job_id = await node.create("/sleep", '{"seconds": 0.2}')
    waiting = asyncio.create_task(node.service.wait_for_job(job_id=job_id, wait_seconds=30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await node.executor.run_once()
    job = await asyncio.wait_for(waiting, 5)
    assert job.status is JobState.DONE and job.progress == 100
    assert loop.time() - began < 2  # woken by the finish, not by a timeout
    assert node.service._waiters == {}  # nothing left behind


async def test_wait_for_job_returns_unfinished_job_after_the_wait(node: Node) -> None:
    job_id = await node.create("/echo", "{}")
    job = await node.service.wait_for_job(job_id=job_id, wait_seconds=0.2)
    assert job.status is JobState.QUEUED


def test_json_formatter_keeps_extras_and_access_fields() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("jobstore", logging.INFO, "f.py", 1, "hi %s", ("there",), None)
    record.job_id = 7
    doc = json.loads(formatter.format(record))
    assert doc["message"] == "hi there" and doc["level"] == "info" and doc["job_id"] == 7
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "h.py",
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/healthz", "1.1", 200),
        None,
    )
    doc = json.loads(formatter.format(access))
    assert (doc["method"], doc["path"], doc["status"]) == ("GET", "/healthz", 200)


@pytest.mark.slow
def test_serve_writes_json_logs(tmp_path: Any) -> None:
    server = Server(f"sqlite:///{tmp_path / 'logs.db'}", tmp_path, log_level="info")
    server.start(extra_args=["--log-format", "json", "--auth", "off"])
    try:
        assert server.client.get("/healthz").status_code == 200
    finally:
        server.terminate()
        server.cleanup()
    lines = [
        line for line in server.logs().splitlines() if line.strip() and not line.startswith("===")
    ]
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(d["logger"] == "jobstore" and "jobstore" in d["message"] for d in docs)
    assert any(d.get("path") == "/healthz" and d.get("status") == 200 for d in docs)


def test_endpoint_labels_stop_growing_at_the_cap() -> None:
    """A Kinetica upstream runs names clients make up: past the cap they share one label."""
    metrics = Metrics()
    for n in range(MAX_ENDPOINT_LABELS + 5):
        metrics.job_created(f"/made/up_{n}")
    metrics.upstream_called("/made/up_0", "2xx", 0.01)
    metrics.upstream_called("/another/one", "5xx", 0.01)
    created = {
        s.labels["endpoint"]: s.value
        for family in text_string_to_metric_families(metrics.render({}).decode())
        for s in family.samples
        if s.name == "jobstore_jobs_created_total"
    }
    assert len(created) == MAX_ENDPOINT_LABELS + 1
    assert created[OTHER_ENDPOINTS] == 5 and created["/made/up_0"] == 1
    calls = metrics.render({}).decode()
    assert 'endpoint="/another/one"' not in calls
    assert 'jobstore_upstream_calls_total{endpoint="(other)",status_class="5xx"} 1.0' in calls
