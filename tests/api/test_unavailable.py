"""When the database is out of reach: 503 with an ERROR envelope, and a status that says so."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from jobstore.api.app import create_app
from jobstore.core.jobs import JobService
from jobstore.domain.errors import StoreUnavailable
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from tests.support.e2e import closed_port


async def test_unreachable_database_is_reported_not_crashed() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{closed_port()}/jobs", pool_size=1)
    service = JobService(db, default_registry())
    app = create_app(service)
    try:
        assert not await service.ready()
        with pytest.raises(StoreUnavailable, match="database unavailable"):
            await service.get_job(job_id=1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            created = await client.post(
                "/create/job",
                json={"endpoint": "/echo", "request_encoding": "json", "data_str": "{}"},
            )
            status = await client.post("/show/system/status", json={"options": {}})
        assert created.status_code == 503
        envelope = created.json()
        assert envelope["status"] == "ERROR" and envelope["data_type"] == "none"
        assert envelope["message"].startswith("database unavailable")
        assert "Traceback" not in envelope["message"]
        assert status.status_code == 200
        system = json.loads(json.loads(status.json()["data_str"])["status_map"]["system"])
        assert system["status"] != "running"
    finally:
        await db.dispose()


async def test_a_database_without_the_schema_is_not_ready(tmp_path: Path) -> None:
    """Not an outage (no 503 loop for the client), but not "running" either."""
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}", pool_size=1)
    service = JobService(db, default_registry())
    app = create_app(service)
    try:
        assert not await service.ready()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            got = await client.post("/get/job", json={"job_id": 1})
            status = await client.post("/show/system/status", json={"options": {}})
        assert got.status_code == 400 and got.json()["status"] == "ERROR"
        system = json.loads(json.loads(status.json()["data_str"])["status_map"]["system"])
        assert system["status"] != "running"
    finally:
        await db.dispose()
