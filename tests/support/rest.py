"""Helpers shared by the tests of the native REST API (/api/v1): checks of its answers, and the
app over a node whose executor the test drives, reached in-process through httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from jobstore.api.rest import RestConfig
from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.executor.runner import Executor
from jobstore.store import Database

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Check an RFC 9457 answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/api/v1/problems/{slug}", body
    assert body["status"] == status
    assert body["title"] and body["detail"], body
    assert body["instance"] == response.request.url.path
    assert "Traceback" not in response.text
    return body


def bad_fields(response: httpx.Response) -> set[str]:
    """The fields a 400 names."""
    body = problem(response, 400, "invalid-request")
    return {e["field"] for e in body["errors"]}


@dataclass
class Env:
    """A REST client on a node, with the node's database, job service and executor."""

    db: Database
    service: JobService
    executor: Executor
    client: httpx.AsyncClient

    async def create(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """POST a job, check the 201 and its Location, and return the job."""
        response = await self.client.post("/api/v1/jobs", json=body, **kwargs)
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"/api/v1/jobs/{response.json()['id']}"
        job: dict[str, Any] = response.json()
        return job

    async def echo(self, payload: Any = None, **fields: Any) -> int:
        """Create an /echo job and return its id."""
        job = await self.create({"endpoint": "/echo", "payload": payload, **fields})
        return int(job["id"])

    async def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """GET a JSON 200 and return its body."""
        response = await self.client.get(path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        return body

    async def start_sleeping(self) -> tuple[dict[str, Any], asyncio.Task[list[int]]]:
        """Create a 30-second /sleep job, start the executor on it, and poll (up to ~10 s) until
        the API says it is running; return the job and the executor's task."""
        job = await self.create({"endpoint": "/sleep", "payload": {"seconds": 30}})
        run = asyncio.create_task(self.executor.run_once())
        for _ in range(500):
            if (await self.get(f"/api/v1/jobs/{job['id']}"))["status"] == "running":
                break
            await asyncio.sleep(0.02)
        return job, run

    async def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """The rows of a read-only SQL query, straight from the database."""
        async with self.db.reading() as conn:
            return [tuple(r) for r in await conn.execute(sa.text(query), params)]


async def rest_env(db: Database, rest: RestConfig, **node: Any) -> AsyncIterator[Env]:
    """The app over a node (`node_for_tests(db, **node)`) that runs nothing in the background:
    the test drives its executor (`executor.run_once()`); the executor is stopped at the end."""
    built = node_for_tests(db, **node)
    app = built.app(run_background=False, rest=rest)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(db, built.jobs, built.executor, client)
    finally:
        await built.executor.stop()
