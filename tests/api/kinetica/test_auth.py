"""Authentication on the Kinetica facade: 401s, and who may see, cancel and reuse which jobs."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobstore.api.app import create_app
from jobstore.api.kinetica import KineticaConfig
from jobstore.core.accounts import Authenticator
from jobstore.core.jobs import JobService
from jobstore.endpoints.registry import default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database
from tests.support.http import basic


@pytest.fixture
def auth(db: Database) -> Authenticator:
    return Authenticator(db)


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        reply = await self.client.post(path, json=body, headers=headers)
        envelope = reply.json()
        data = json.loads(envelope["data_str"]) if envelope["data_str"] else None
        return reply.status_code, envelope, data

    async def create(self, headers: dict[str, str], tag: str) -> int:
        body = {
            "endpoint": "/echo",
            "request_encoding": "json",
            "data_str": "{}",
            "options": {"job_tag": tag},
        }
        status, envelope, data = await self.call("/create/job", body, headers)
        assert status == 200, envelope
        return int(data["job_id"])


@pytest.fixture
async def secured(db: Database, auth: Authenticator) -> AsyncIterator[tuple[Api, dict[str, Any]]]:
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("bob", "pw-bob")
    await auth.add_user("root", "pw-root", admin=True)
    _, token = await auth.create_token("alice", project="p9")
    service = JobService(db, default_registry())
    app = create_app(service, kinetica=KineticaConfig(authenticator=auth))
    creds = {
        "alice": basic("alice", "pw-alice"),
        "bob": basic("bob", "pw-bob"),
        "root": basic("root", "pw-root"),
        "token": {"Authorization": f"Bearer {token}"},
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield Api(client), creds


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong"),
        basic("nobody", "pw"),
        {"Authorization": "Bearer jst_not-a-token"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Digest abc"},
    ],
)
async def test_requests_without_valid_credentials_get_401(
    secured: tuple[Api, dict[str, Any]], headers: dict[str, str]
) -> None:
    api, _ = secured
    for path, body in (
        ("/create/job", {"endpoint": "/echo", "request_encoding": "json", "data_str": "{}"}),
        ("/get/job", {"job_id": 1}),
        ("/show/system/status", {"options": {}}),
    ):
        status, envelope, _ = await api.call(path, body, headers)
        assert status == 401
        assert envelope["status"] == "ERROR" and "authentication required" in envelope["message"]
    assert (await api.client.get("/")).text == "Kinetica is running!"  # the ping stays open


async def test_jobs_record_their_user_and_project(
    db: Database, secured: tuple[Api, dict[str, Any]]
) -> None:
    api, creds = secured
    await api.create(creds["alice"], "by-password")
    await api.create(creds["token"], "by-token")
    async with db.reading() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT job_tag, created_by, project FROM jobs ORDER BY job_id")
            )
        ).all()
    assert [tuple(r) for r in rows] == [("by-password", "alice", None), ("by-token", "alice", "p9")]


async def test_users_see_and_cancel_only_their_own_jobs(
    secured: tuple[Api, dict[str, Any]],
) -> None:
    api, creds = secured
    alices = await api.create(creds["alice"], "a1")
    bobs = await api.create(creds["bob"], "b1")

    async def listed(who: str) -> list[int]:
        _, _, data = await api.call("/admin/show/jobs", {"options": {}}, creds[who])
        return list(data["job_id"])

    assert await listed("alice") == [alices]
    assert await listed("bob") == [bobs]
    assert await listed("root") == [alices, bobs]

    status, envelope, _ = await api.call("/get/job", {"job_id": bobs}, creds["alice"])
    assert status == 400 and "not found" in envelope["message"]
    status, envelope, _ = await api.call(
        "/get/job", {"job_id": 0, "options": {"job_tag": "b1"}}, creds["alice"]
    )
    assert status == 400 and "not found" in envelope["message"]
    status, _, data = await api.call("/get/job", {"job_id": bobs}, creds["root"])
    assert status == 200 and data["info"]["job_tag"] == "b1"

    cancel = {"job_ids": [alices, bobs], "action": "cancel", "options": {}}
    _, _, data = await api.call("/admin/alter/jobs", cancel, creds["alice"])
    assert data["status"] == ["cancelled", "not_found"]
    _, _, data = await api.call("/get/job", {"job_id": bobs}, creds["bob"])
    assert data["job_status"] == "RUNNING"  # bob's job is untouched
    _, _, data = await api.call("/admin/alter/jobs", cancel, creds["root"])
    assert data["status"] == ["already_done", "cancelled"]


async def test_removed_jobs_stay_private(db: Database, secured: tuple[Api, dict[str, Any]]) -> None:
    api, creds = secured
    body = {
        "endpoint": "/echo",
        "request_encoding": "json",
        "data_str": "{}",
        "options": {"job_tag": "gone", "remove_job_on_complete": "true"},
    }
    _, _, data = await api.call("/create/job", body, creds["alice"])
    executor = Executor(db, default_registry(), ExecutorConfig(node_id="t"))
    assert await executor.run_once() == [data["job_id"]]
    _, envelope, _ = await api.call("/get/job", {"job_id": data["job_id"]}, creds["alice"])
    assert "was removed because remove_job_on_complete" in envelope["message"]
    _, envelope, _ = await api.call("/get/job", {"job_id": data["job_id"]}, creds["bob"])
    assert "not found" in envelope["message"] and "gone" not in envelope["message"]
    cancel = {"job_ids": [data["job_id"]], "action": "cancel", "options": {}}
    assert (await api.call("/admin/alter/jobs", cancel, creds["alice"]))[2]["status"] == [
        "already_done"
    ]
    assert (await api.call("/admin/alter/jobs", cancel, creds["bob"]))[2]["status"] == ["not_found"]


async def test_a_tag_held_by_another_user_reveals_nothing(
    secured: tuple[Api, dict[str, Any]],
) -> None:
    api, creds = secured
    await api.create(creds["alice"], "mine")
    body = {
        "endpoint": "/echo",
        "request_encoding": "json",
        "data_str": "{}",
        "options": {"job_tag": "mine"},
    }
    for payload in ("{}", "[1]"):  # the same request, and another one
        status, envelope, _ = await api.call(
            "/create/job", {**body, "data_str": payload}, creds["bob"]
        )
        assert status == 400 and envelope["message"] == (
            "job_tag 'mine' is already in use; choose another tag"
        )
    status, _, _ = await api.call("/create/job", body, creds["alice"])
    assert status == 200  # alice re-sending her own create still gets her job
