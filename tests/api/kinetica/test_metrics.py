"""Kinetica calls are labelled by their endpoint in /metrics, not all as the catch-all."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from jobstore.cli.node import node_for_tests
from jobstore.store import Database

CREATE = {
    "endpoint": "/echo",
    "request_encoding": "json",
    "data": "",
    "data_str": '{"a": 1}',
    "options": {},
}


async def test_kinetica_routes_in_metrics(db: Database) -> None:
    app = node_for_tests(db, metrics=True).app(run_background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        created = await client.post("/create/job", json=CREATE)
        assert created.json()["status"] == "OK", created.text
        await client.post("/get/job", json={"job_id": 1, "options": {}})
        await client.post("/gpudb-0/get/job", json={"job_id": 1, "options": {}})
        text = (await client.get("/metrics")).text
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(text)
        if family.name == "jobstore_http_request_duration_seconds"
        for sample in family.samples
    }
    assert {"/create/job", "/get/job"} <= routes
    assert "/{path:path}" in routes  # the prefixed path still goes through the catch-all
