"""Recurring schedules over the REST API (/api/v1/schedules), on SQLite and PostgreSQL.

The real app over a node whose clock the test holds (a ManualClock), reached in-process through
httpx: create, list, read, change, pause, resume, delete and fire; every refusal names its
field; a schedule's jobs link back to it. The node's firing loop does not run: a test fires due
schedules itself (`node.schedules.fire_due()`). At the end, schemathesis fuzzes the schedule
routes against the OpenAPI document with names that exist (test_rest_schemathesis.py fuzzes
every route, but its names are random: it sees only 404s).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis

from jobstore.api.rest import RestConfig
from jobstore.cli.node import Node, node_for_tests
from jobstore.core.accounts import Authenticator
from jobstore.domain.clock import ManualClock
from jobstore.store import Database
from tests.support.avro import SLEEP_REQUEST, avro_write
from tests.support.fuzz import fuzz_operations, fuzzed_app
from tests.support.http import basic
from tests.support.rest import bad_fields, problem

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SCHEDULES = "/api/v1/schedules"


def z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Api:
    node: Node
    client: httpx.AsyncClient
    clock: ManualClock

    async def create(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """POST a schedule, check the 201 and its Location, and return the document."""
        response = await self.client.post(SCHEDULES, json=body, **kwargs)
        assert response.status_code == 201, response.text
        doc: dict[str, Any] = response.json()
        assert response.headers["location"] == f"{SCHEDULES}/{doc['name']}"
        assert doc["links"]["self"] == response.headers["location"]
        return doc

    async def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.client.get(path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        return body

    async def patch(self, name: str, body: Any) -> httpx.Response:
        return await self.client.patch(f"{SCHEDULES}/{name}", json=body)

    async def names(self) -> list[str]:
        return [s["name"] for s in (await self.get(SCHEDULES))["schedules"]]


async def make_api(db: Database, **rest: Any) -> AsyncIterator[Api]:
    clock = ManualClock(START)
    node = node_for_tests(db, node_id="schedules-rest", clock=clock)
    app = node.app(run_background=False, rest=RestConfig(**rest))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(node, client, clock)
    finally:
        await node.executor.stop()


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    async for made in make_api(db):
        yield made


def every(name: str = "tick", seconds: float = 60, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": "/echo",
        "payload": {"n": 1},
        "every_seconds": seconds,
        "start_at": z(START),
        **fields,
    }


# -- create, read, list ---------------------------------------------------------------------


async def test_create_then_read_and_list(api: Api) -> None:
    made = await api.create(
        every(priority=3, max_attempts=2, concurrency_key="customer-7", remove_on_complete=True)
    )
    assert made == {
        "name": "tick",
        "endpoint": "/echo",
        "encoding": "json",
        "payload": {"n": 1},
        "remove_on_complete": True,
        "options": {
            "priority": "3",
            "max_attempts": "2",
            "concurrency_key": "customer-7",
            "remove_job_on_complete": "true",
        },
        "cron": None,
        "every_seconds": 60.0,
        "timezone": "UTC",
        "misfire": "skip",
        "start_at": "2026-06-01T12:00:00Z",
        "end_at": None,
        "enabled": True,
        "source": "api",
        "created_by": None,
        "next_fire_at": "2026-06-01T12:00:00Z",
        "last_fire_at": None,
        "last_job_id": None,
        "created_at": "2026-06-01T12:00:00Z",
        "updated_at": "2026-06-01T12:00:00Z",
        "links": {"self": "/api/v1/schedules/tick", "last_job": None},
    }
    assert await api.get(f"{SCHEDULES}/tick") == made
    await api.create(every("another.one", cron="*/5 * * * *", every_seconds=None))
    assert await api.names() == ["another.one", "tick"]


async def test_a_cron_in_a_time_zone_and_the_defaults(api: Api) -> None:
    made = await api.create(
        {"name": "paris-9am", "endpoint": "/echo", "cron": "0 9 * * *", "timezone": "Europe/Paris"}
    )
    # 09:00 in Paris in June (UTC+2) is 07:00Z, the next day: 12:00Z has passed it today.
    assert made["next_fire_at"] == "2026-06-02T07:00:00Z"
    assert made["payload"] == {} and made["misfire"] == "skip" and made["enabled"] is True
    paused = await api.create(
        every("paused", enabled=False, misfire="all", end_at=z(START + timedelta(days=1)))
    )
    assert paused["enabled"] is False and paused["misfire"] == "all"
    assert paused["end_at"] == "2026-06-02T12:00:00Z"


async def test_a_binary_payload_is_shown_as_base64(api: Api) -> None:
    data = base64.b64encode(avro_write(SLEEP_REQUEST, {"seconds": 0.5})).decode()
    made = await api.create(
        {"name": "nap", "endpoint": "/sleep", "payload_base64": data, "every_seconds": 3600}
    )
    assert made["encoding"] == "binary" and made["payload_base64"] == data
    assert "payload" not in made


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "every day"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 0 30 2 *", "every_seconds": None}, "cron"),  # 30 February: never
        ({"cron": "* * * * *"}, "cron"),  # and every_seconds: both
        ({"every_seconds": None}, "cron"),  # neither
        ({"every_seconds": 0.5}, "every_seconds"),
        ({"every_seconds": 10**400}, "every_seconds"),
        ({"every_seconds": "60"}, "every_seconds"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "America"}, "timezone"),  # a folder of the zone database
        ({"timezone": "x" * 300}, "timezone"),
        ({"misfire": "sometimes"}, "misfire"),
        ({"name": "no spaces"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": None}, "name"),
        ({"endpoint": ""}, "endpoint"),
        ({"tag": "mine"}, "tag"),
        ({"run_at": z(START)}, "run_at"),
        ({"delay_seconds": 5}, "delay_seconds"),
        ({"priority": 5000}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"retry_errors": 1}, "retry_errors"),
        ({"concurrency_key": 7}, "concurrency_key"),
        ({"concurrency_key": ""}, "concurrency_key"),
        ({"start_at": "yesterday"}, "start_at"),
        ({"start_at": "9999-01-01T00:00:00Z"}, "start_at"),
        ({"end_at": z(START - timedelta(days=1))}, "end_at"),  # before start_at
        ({"enabled": None}, "enabled"),
        ({"payload_base64": "not base64!"}, "payload_base64"),
        ({"endpoint": "/sleep", "payload": {"seconds": "soon"}}, "payload"),
        ({"whatever": 1}, "whatever"),
    ],
)
async def test_a_create_names_what_is_wrong(api: Api, change: dict[str, Any], field: str) -> None:
    response = await api.client.post(SCHEDULES, json=every() | change)
    assert field in bad_fields(response), response.text
    assert await api.names() == []


async def test_a_create_refuses_an_unknown_endpoint_a_taken_name_and_no_body(api: Api) -> None:
    response = await api.client.post(SCHEDULES, json=every(endpoint="/nowhere"))
    assert problem(response, 400, "unknown-endpoint")["endpoint"] == "/nowhere"
    for body in (None, [1], "tick"):
        response = await api.client.post(SCHEDULES, json=body)
        assert bad_fields(response) == {"body"}
    await api.create(every())
    response = await api.client.post(SCHEDULES, json=every(seconds=5))
    assert problem(response, 409, "schedule-exists")["schedule"] == "tick"
    assert (await api.get(f"{SCHEDULES}/tick"))["every_seconds"] == 60


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/fire"),
    ],
)
async def test_a_missing_schedule_is_404(api: Api, method: str, suffix: str) -> None:
    for name in ("nope", "no%20such"):
        response = await api.client.request(
            method, f"{SCHEDULES}/{name}{suffix}", json={"enabled": True}
        )
        found = problem(response, 404, "schedule-not-found")
        assert "no schedule named" in found["detail"]
    # No name holds a NUL: refused at the door, before any route.
    response = await api.client.request(method, f"{SCHEDULES}/%00{suffix}", json={})
    assert problem(response, 400, "invalid-request")["errors"][0]["in"] == "path"


async def test_other_methods_are_405(api: Api) -> None:
    await api.create(every())
    response = await api.client.put(f"{SCHEDULES}/tick", json={})
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


# -- update -----------------------------------------------------------------------------------


async def test_an_update_changes_what_it_names_and_keeps_the_rest(api: Api) -> None:
    await api.create(every(priority=3, max_attempts=2, remove_on_complete=True))
    api.clock.advance(30)
    response = await api.patch(
        "tick",
        {
            "cron": "0 * * * *",  # replaces every_seconds
            "priority": None,  # back to the default
            "timeout_seconds": 9,
            "remove_on_complete": False,
            "payload": ["new"],
        },
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["cron"] == "0 * * * *" and changed["every_seconds"] is None
    assert changed["options"] == {"max_attempts": "2", "timeout_seconds": "9"}
    assert changed["remove_on_complete"] is False and changed["payload"] == ["new"]
    assert changed["next_fire_at"] == "2026-06-01T13:00:00Z"  # worked out again from now
    assert changed["updated_at"] == "2026-06-01T12:00:30Z"
    assert changed["created_at"] == "2026-06-01T12:00:00Z"
    assert await api.get(f"{SCHEDULES}/tick") == changed

    # A change that leaves the timing alone leaves the next fire time alone.
    api.clock.advance(60)
    body = {"misfire": "once", "endpoint": "/fail", "payload": {"message": "boom"}}
    again = (await api.patch("tick", body)).json()
    assert again["next_fire_at"] == changed["next_fire_at"]
    assert (again["misfire"], again["endpoint"]) == ("once", "/fail")
    assert again["payload"] == {"message": "boom"}
    back = (await api.patch("tick", {"every_seconds": 600, "timezone": None})).json()
    assert back["cron"] is None and back["every_seconds"] == 600.0
    assert back["next_fire_at"] == "2026-06-01T12:10:00Z"  # the grid from start_at


async def test_an_update_is_checked_as_a_create_and_changes_nothing_when_refused(
    api: Api,
) -> None:
    made = await api.create(every())
    for body, field in [
        ({"cron": "nonsense"}, "cron"),
        ({"every_seconds": None}, "cron"),  # neither left
        ({"timezone": "Nowhere/Else"}, "timezone"),
        ({"name": "renamed"}, "name"),
        ({"tag": "x"}, "tag"),
        ({"encoding": "binary"}, "encoding"),  # without a payload
        ({"endpoint": "/sleep"}, "payload"),  # {"n": 1} is no sleep_request
        ({"enabled": None}, "enabled"),
        ({"start_at": z(START + timedelta(days=2)), "end_at": z(START)}, "end_at"),
    ]:
        response = await api.patch("tick", body)
        assert field in bad_fields(response), (body, response.text)
    problem(await api.patch("tick", {"endpoint": "/nowhere"}), 400, "unknown-endpoint")
    assert bad_fields(await api.client.patch(f"{SCHEDULES}/tick")) == {"body"}
    assert await api.get(f"{SCHEDULES}/tick") == made


# -- pause, resume, fire, delete --------------------------------------------------------------


async def test_pause_and_resume(api: Api) -> None:
    await api.create(every(seconds=60))
    paused = (await api.client.post(f"{SCHEDULES}/tick/pause")).json()
    assert paused["enabled"] is False
    api.clock.advance(3600)
    assert (await api.node.schedules.fire_due()).jobs == {}
    resumed = await api.client.post(f"{SCHEDULES}/tick/resume")
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True
    # What it missed while paused is not made up: its next fire is from now.
    assert resumed.json()["next_fire_at"] == "2026-06-01T13:00:00Z"
    disabled = (await api.patch("tick", {"enabled": False})).json()
    assert disabled["enabled"] is False
    api.clock.advance(90)
    enabled = (await api.patch("tick", {"enabled": True})).json()
    assert enabled["enabled"] is True and enabled["next_fire_at"] == "2026-06-01T13:02:00Z"


async def test_a_fire_creates_a_job_that_links_back(api: Api) -> None:
    await api.create(every(priority=4, payload={"hello": "fire"}))
    response = await api.client.post(f"{SCHEDULES}/tick/fire")
    assert response.status_code == 201, response.text
    fired = response.json()
    job_id = fired["job_id"]
    assert fired == {"job_id": job_id, "location": f"/api/v1/jobs/{job_id}"}
    assert response.headers["location"] == fired["location"]

    job = await api.get(fired["location"])
    assert job["schedule"] == "tick"
    assert job["links"] == {"schedule": "/api/v1/schedules/tick"}
    assert job["request"] == {"encoding": "json", "json": {"hello": "fire"}}
    assert job["priority"] == 4 and job["options"]["schedule"] == "tick"
    schedule = await api.get(job["links"]["schedule"])
    assert schedule["last_job_id"] == job_id
    assert schedule["links"]["last_job"] == fired["location"]
    assert schedule["last_fire_at"] is None  # a fire now is not a fire time

    # The jobs of its fire times link back the same way; a job of no schedule has no link.
    fired_due = await api.node.schedules.fire_due()
    [due_id] = fired_due.jobs["tick"]
    due = await api.get(f"/api/v1/jobs/{due_id}")
    assert due["schedule"] == "tick" and due["options"]["fire_time"] == START.isoformat()
    plain = await api.client.post("/api/v1/jobs", json={"endpoint": "/echo"})
    plain_job = await api.get(plain.headers["location"])
    assert "schedule" not in plain_job and "links" not in plain_job


async def test_a_paused_schedule_fires_on_request(api: Api) -> None:
    await api.create(every(enabled=False))
    response = await api.client.post(f"{SCHEDULES}/tick/fire")
    assert response.status_code == 201, response.text


async def test_delete_keeps_the_jobs(api: Api) -> None:
    await api.create(every())
    fired = (await api.client.post(f"{SCHEDULES}/tick/fire")).json()
    response = await api.client.delete(f"{SCHEDULES}/tick")
    assert response.status_code == 204 and response.content == b""
    problem(await api.client.get(f"{SCHEDULES}/tick"), 404, "schedule-not-found")
    assert await api.names() == []
    job = await api.get(fired["location"])
    assert job["schedule"] == "tick"  # still says where it came from


# -- the engine option concurrency_key on a job create --------------------------------------------


async def test_a_job_create_takes_a_concurrency_key(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/jobs", json={"endpoint": "/echo", "concurrency_key": "customer-7"}
    )
    assert response.status_code == 201, response.text
    job = await api.get(response.headers["location"])
    assert job["options"]["concurrency_key"] == "customer-7"
    for wrong in (7, "", ["a"], "x" * 129, "tab\there"):
        response = await api.client.post(
            "/api/v1/jobs", json={"endpoint": "/echo", "concurrency_key": wrong}
        )
        assert bad_fields(response) == {"concurrency_key"}, wrong


# -- authentication ---------------------------------------------------------------------------


async def test_with_authentication_users_manage_their_own_schedules(db: Database) -> None:
    """As with jobs: a user who is not an admin sees and manages only the schedules they
    created (another's is not found); an admin, every one."""
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("bob", "pw-bob")
    await auth.add_user("root", "pw-root", admin=True)
    alice, bob = basic("alice", "pw-alice"), basic("bob", "pw-bob")
    root = basic("root", "pw-root")
    async for api in make_api(db, authenticator=auth):
        response = await api.client.post(SCHEDULES, json=every())
        problem(response, 401, "unauthorized")
        problem(await api.client.get(SCHEDULES), 401, "unauthorized")
        made = await api.create(every(), headers=alice)
        assert made["created_by"] == "alice"
        assert (await api.get(SCHEDULES, headers=bob))["schedules"] == []
        for method, suffix in [("GET", ""), ("PATCH", ""), ("POST", "/pause"), ("POST", "/fire"),
                               ("DELETE", "")]:  # fmt: skip
            body = {"every_seconds": 5} if method == "PATCH" else None
            answer = await api.client.request(
                method, f"{SCHEDULES}/tick{suffix}", json=body, headers=bob
            )
            problem(answer, 404, "schedule-not-found")
        listed = await api.get(SCHEDULES, headers=root)
        assert [s["name"] for s in listed["schedules"]] == ["tick"]
        paused = await api.client.post(f"{SCHEDULES}/tick/pause", headers=root)
        assert paused.status_code == 200 and paused.json()["created_by"] == "alice"
        fired = await api.client.post(f"{SCHEDULES}/tick/fire", headers=alice)
        assert fired.status_code == 201
        # The schedule's jobs are its creator's.
        job = await api.get(fired.json()["location"], headers=alice)
        assert job["created_by"] == "alice"
        problem(await api.client.get(fired.json()["location"], headers=bob), 404, "job-not-found")


# -- the OpenAPI document, with schedules that exist ------------------------------------------

SEEDS = [
    every("seed-every", seconds=30, priority=2, remove_on_complete=True),
    {"name": "seed-cron", "endpoint": "/echo", "cron": "0 9 * * 1-5", "timezone": "Asia/Tokyo"},
    {"name": "seed-paused", "endpoint": "/fail", "every_seconds": 3600, "enabled": False},
]


def test_the_schedule_routes_match_the_openapi_document(database_url: str) -> None:
    """Every answer of the schedule routes, valid requests and invalid ones, is declared (its
    status, content type, body and headers); the seeds are put back before each request, so
    the routes of one schedule see it (and a DELETE does not end the test's reach)."""
    seen: dict[str, set[int]] = {}
    with fuzzed_app(database_url, "schedules-fuzz") as app:

        def send(case: schemathesis.Case) -> httpx.Response:
            for seed in SEEDS:  # 409 when it is there
                app.runner.run(app.client.post(SCHEDULES, json=seed))
            return app.send(case)

        document = app.runner.run(app.client.get("/api/v1/openapi.json")).json()
        names = [str(seed["name"]) for seed in SEEDS]
        name_schema = {"type": "string", "enum": [*names, "no-such-schedule"]}
        document["components"]["parameters"]["ScheduleName"]["schema"] = name_schema
        # Crons and zones that exist (and a create of every_seconds with a JSON payload),
        # or nearly every valid request would still be a 400.
        schemas = document["components"]["schemas"]
        update, create = schemas["UpdateSchedule"], schemas["CreateSchedule"]
        update["properties"]["cron"]["enum"] = ["*/5 * * * *", "0 0 29 2 *", "bad", None]
        for body in (create, update):
            body["properties"]["timezone"]["enum"] = ["UTC", "Europe/Paris", "Nowhere", None]
        create["properties"]["name"] = {"enum": [*names, "new-1", "new-2"]}
        create["required"].append("every_seconds")
        create["properties"]["every_seconds"]["type"] = "number"
        for name in ("cron", "payload_base64"):
            del create["properties"][name]
        schema = schemathesis.openapi.from_dict(document)
        fuzz_operations(schema.include(path_regex="^/api/v1/schedules"), send, seen)
    print({label: sorted(codes) for label, codes in seen.items()})
    assert {201, 400, 409} <= seen["POST /api/v1/schedules"]
    assert {200, 404} <= seen["GET /api/v1/schedules/{name}"]
    assert {200, 400, 404} <= seen["PATCH /api/v1/schedules/{name}"]
    assert {204, 404} <= seen["DELETE /api/v1/schedules/{name}"]
    for action in ("pause", "resume"):
        assert {200, 404} <= seen[f"POST /api/v1/schedules/{{name}}/{action}"]
    assert {201, 404} <= seen["POST /api/v1/schedules/{name}/fire"]
