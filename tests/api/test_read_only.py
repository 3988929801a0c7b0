"""A read-only PostgreSQL (a standby given by mistake, a primary demoted in a failover) is an
outage: creates answer 503 in each facade's dialect, /readyz says not ready and why, nothing
crashes, and once the server takes writes again the node recovers without a restart (the
read-only connections it had pooled are dropped, not reused).

The database is made read-only with ALTER DATABASE, which reaches new sessions only: the
pooled connections that keep it after it is lifted are what the recovery must drop. A whole
server turned read-only under running nodes is in tests/topologies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from jobstore.cli.node import node_for_tests
from jobstore.store import Database
from tests.support.databases import pg_admin
from tests.support.rest import problem

pytestmark = pytest.mark.postgres


@pytest.fixture
def dialect() -> str:
    return "postgres"


async def read_only(url: str, on: bool) -> None:
    name = make_url(url).database
    setting = (
        "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    )
    await pg_admin(f'ALTER DATABASE "{name}" {setting}')


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await read_only(database_url, True)
    db = Database(database_url, pool_size=2)
    node = node_for_tests(db, node_id="read-only-test")
    app = node.app(run_background=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node"
        ) as http:
            yield http
    finally:
        await node.executor.stop()
        await db.dispose()
        await read_only(database_url, False)


async def test_a_read_only_database_is_an_outage_and_the_node_recovers(
    database_url: str, client: httpx.AsyncClient
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert "read-only" in ready.json()["checks"]["writable"]

    created = await client.post("/api/v1/jobs", json={"endpoint": "/echo", "payload": {"n": 1}})
    problem(created, 503, "service-unavailable")
    assert created.headers["Retry-After"]

    body = {"endpoint": "/echo", "request_encoding": "json", "data_str": '{"n": 2}'}
    kinetica = await client.post("/create/job", json=body)
    assert kinetica.status_code == 503
    assert kinetica.json()["status"] == "ERROR"
    assert "Traceback" not in kinetica.text

    await read_only(database_url, False)
    # The pooled sessions are still read-only; the first failure drops them all.
    answers = [
        (await client.post("/api/v1/jobs", json={"endpoint": "/echo", "payload": {"n": i}}))
        for i in range(3)
    ]
    assert answers[-1].status_code == 201, [a.status_code for a in answers]
    assert (await client.get("/readyz")).status_code == 200
