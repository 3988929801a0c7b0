"""A REST create is answered from its own transaction: the answer describes the job as its
committed INSERT wrote it, and no second statement can turn a stored job into an error.

To prove no second read happens, the node connects as a PostgreSQL role that may insert jobs
but read back only the two columns the INSERT returns: any read of the row fails
(permission denied), as a second transaction through a failing pooler once did.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from jobstore.cli.node import node_for_tests
from jobstore.store import Database
from tests.support.databases import pg_admin

pytestmark = pytest.mark.postgres


@pytest.fixture
def dialect() -> str:
    return "postgres"


@pytest.fixture
async def insert_only_url(database_url: str) -> AsyncIterator[str]:
    """The test database, reached as a role that can INSERT jobs and read back nothing else."""
    role = f"creator_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE ROLE "{role}" LOGIN')
    admin = await asyncpg.connect(make_url(database_url).render_as_string(hide_password=False))
    try:
        await admin.execute(
            f'GRANT USAGE ON SCHEMA public TO "{role}";'
            f'GRANT INSERT ON jobs TO "{role}";'
            f'GRANT SELECT (job_id, job_tag) ON jobs TO "{role}";'
            f'GRANT USAGE ON SEQUENCE jobs_job_id_seq TO "{role}";'
        )
        yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.close()
        await pg_admin(f'DROP ROLE "{role}"')


async def test_a_rest_create_reads_nothing_back(database_url: str, insert_only_url: str) -> None:
    db = Database(insert_only_url, pool_size=2)
    node = node_for_tests(db, node_id="create-test")
    transport = httpx.ASGITransport(app=node.app(run_background=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            body = {"endpoint": "/echo", "payload": {"n": 1}, "priority": 5, "delay_seconds": 60}
            created = await client.post("/api/v1/jobs", json=body)
            # Any read of the row would have failed: this answer came from the INSERT alone.
            assert created.status_code == 201, created.text
            summary = created.json()
            async with db.reading() as conn:
                with pytest.raises(Exception, match="permission denied"):
                    await conn.exec_driver_sql("SELECT status FROM jobs")
    finally:
        await node.executor.stop()
        await db.dispose()

    admin = await asyncpg.connect(make_url(database_url).render_as_string(hide_password=False))
    try:
        row = await admin.fetchrow("SELECT * FROM jobs WHERE job_id = $1", summary["id"])
    finally:
        await admin.close()
    assert row is not None
    assert (summary["tag"], summary["status"], summary["priority"]) == (
        row["job_tag"],
        "scheduled",
        5,
    )
    assert summary["status"] == row["status"]
    assert summary["created_at"] == row["created_at"].isoformat().replace("+00:00", "Z")
    assert summary["run_at"] == row["run_at"].isoformat().replace("+00:00", "Z")
