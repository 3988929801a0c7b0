"""The REST API and the job engine: per-job options, scheduled jobs, retry, attempts and bulk
retry/cancel, over a real database (SQLite, PostgreSQL).

The executor and the scheduler run when a test says so (`run_once`), on a ManualClock where the
test moves time, so backoffs and delays need no sleeping.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from jobstore.api.rest import RestConfig
from jobstore.api.rest.inputs import OPTION_TYPES
from jobstore.core.accounts import Authenticator
from jobstore.domain.clock import ManualClock
from jobstore.domain.options import OPTION_NAMES
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from tests.support.http import basic
from tests.support.rest import Env, bad_fields, problem, rest_env

NODE = "rest-engine"


@endpoint("/once", retryable=False)
async def once(request: Any, ctx: JobContext) -> Any:
    """A handler that must never run twice."""
    return request


async def engine_env(
    db: Database, clock: ManualClock, **rest: Any
) -> AsyncIterator[tuple[Env, ManualClock]]:
    registry = default_registry()
    registry.add(getattr(once, MARK))
    async for env in rest_env(db, RestConfig(**rest), node_id=NODE, registry=registry, clock=clock):
        yield env, clock


@pytest.fixture
async def env(db: Database, clock: ManualClock) -> AsyncIterator[Env]:
    async for e, _ in engine_env(db, clock):
        yield e


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def statuses(env: Env) -> dict[int, str]:
    return {int(i): str(s) for i, s in await env.sql("SELECT job_id, status FROM jobs")}


async def fail_job(env: Env, message: str = "boom", **fields: Any) -> int:
    job = await env.create({"endpoint": "/fail", "payload": {"message": message}, **fields})
    return int(job["id"])


# -- create with options -----------------------------------------------------------------------


def test_the_rest_fields_are_the_cores_options() -> None:
    assert tuple(OPTION_TYPES) == OPTION_NAMES


DEFAULTS = {
    "priority": 0,
    "run_at": None,
    "max_attempts": 3,
    "retry_errors": False,
    "backoff_seconds": None,
    "timeout_seconds": None,
    "last_error": None,
}
# (fields sent, what the job document shows besides the defaults, its option as stored)
OPTIONS: list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]] = [
    (
        {"run_at": "2030-01-02T03:04:05+01:00"},
        {"run_at": "2030-01-02T02:04:05Z", "status": "scheduled"},
        {"run_at": "2030-01-02T02:04:05Z"},
    ),
    (
        {"delay_seconds": 90},
        {"run_at": "2026-01-01T00:01:30Z", "status": "scheduled"},
        {"delay_seconds": "90"},
    ),
    ({"priority": -7}, {"priority": -7}, {"priority": "-7"}),
    ({"priority": 3.0}, {"priority": 3}, {"priority": "3"}),
    ({"max_attempts": 5}, {"max_attempts": 5}, {"max_attempts": "5"}),
    ({"retry_errors": True}, {"retry_errors": True}, {"retry_errors": "true"}),
    ({"backoff_seconds": 2.5}, {"backoff_seconds": 2.5}, {"backoff_seconds": "2.5"}),
    ({"timeout_seconds": 30}, {"timeout_seconds": 30.0}, {"timeout_seconds": "30"}),
    ({"priority": None, "run_at": None, "retry_errors": None}, {}, {}),  # null: the default
]


@pytest.mark.parametrize(("fields", "shown", "stored"), OPTIONS)
async def test_create_with_an_option_and_read_it_back(
    env: Env, fields: dict[str, Any], shown: dict[str, Any], stored: dict[str, str]
) -> None:
    created = await env.create({"endpoint": "/echo", "tag": "opt", **fields})
    expected = {**DEFAULTS, "status": "queued", **shown}
    for document in (
        created,
        await env.get(f"/api/v1/jobs/{created['id']}"),
        (await env.get("/api/v1/jobs"))["items"][0],
    ):
        assert {k: document[k] for k in expected} == expected
    detail = await env.get(f"/api/v1/jobs/{created['id']}")
    assert detail["options"] == {"job_tag": "opt", **stored}


BAD_OPTIONS: list[tuple[dict[str, Any], set[str]]] = [
    # the wrong JSON type: refused by the facade, all at once
    ({"priority": "5"}, {"priority"}),
    ({"priority": True}, {"priority"}),
    ({"priority": 2.5}, {"priority"}),
    ({"max_attempts": False}, {"max_attempts"}),
    ({"max_attempts": 1.5}, {"max_attempts"}),
    ({"delay_seconds": "10"}, {"delay_seconds"}),
    ({"delay_seconds": True}, {"delay_seconds"}),
    ({"backoff_seconds": []}, {"backoff_seconds"}),
    ({"timeout_seconds": {}}, {"timeout_seconds"}),
    ({"retry_errors": "yes"}, {"retry_errors"}),
    ({"retry_errors": 1}, {"retry_errors"}),
    ({"run_at": 1767225600}, {"run_at"}),
    ({"run_at": ""}, {"run_at"}),
    ({"run_at": "tomorrow"}, {"run_at"}),
    ({"run_at": "2030-01-01T00:00:00"}, {"run_at"}),  # no time zone
    ({"run_at": "2030-01-01"}, {"run_at"}),
    ({"run_at": "0001-01-01T00:00:00+01:00"}, {"run_at"}),  # before year 1 in UTC
    ({"priority": "x", "retry_errors": "y", "tag": "!"}, {"priority", "retry_errors", "tag"}),
    # out of range, or not allowed together: refused by the core, named the same way
    ({"priority": 1001}, {"priority"}),
    ({"priority": -1001}, {"priority"}),
    ({"priority": 10**30}, {"priority"}),
    ({"max_attempts": 0}, {"max_attempts"}),
    ({"max_attempts": 1001}, {"max_attempts"}),
    ({"delay_seconds": -1}, {"delay_seconds"}),
    ({"delay_seconds": 1e12}, {"delay_seconds"}),
    ({"backoff_seconds": -0.5}, {"backoff_seconds"}),
    ({"timeout_seconds": 0}, {"timeout_seconds"}),
    ({"timeout_seconds": -1}, {"timeout_seconds"}),
    ({"run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5}, {"run_at"}),
    ({"endpoint": "/once", "retry_errors": True}, {"retry_errors"}),
]


async def test_every_bad_option_answers_400_naming_the_field(env: Env) -> None:
    for fields, names in BAD_OPTIONS:
        response = await env.client.post("/api/v1/jobs", json={"endpoint": "/echo", **fields})
        assert bad_fields(response) == names, fields
        errors = response.json()["errors"]
        assert all(e["in"] == "body" and e["message"] for e in errors), errors
    # JSON has no infinity, but 1e400 parses as one: not an integer, nor a number of seconds.
    for name in ("priority", "delay_seconds"):
        content = b'{"endpoint": "/echo", "%s": 1e400}' % name.encode()
        response = await env.client.post(
            "/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        assert bad_fields(response) == {name}
    assert await env.sql("SELECT count(*) FROM jobs") == [(0,)]


async def test_a_range_error_says_what_the_field_takes(env: Env) -> None:
    response = await env.client.post("/api/v1/jobs", json={"endpoint": "/echo", "priority": 5000})
    [error] = problem(response, 400, "invalid-request")["errors"]
    assert error == {
        "in": "body",
        "field": "priority",
        "message": "must be an integer from -1000 to 1000, got 5000",
    }
    response = await env.client.post(
        "/api/v1/jobs", json={"endpoint": "/once", "retry_errors": True}
    )
    assert "/once is not retryable" in problem(response, 400, "invalid-request")["detail"]


async def test_the_unknown_field_message_lists_the_options(env: Env) -> None:
    response = await env.client.post("/api/v1/jobs", json={"endpoint": "/echo", "priorty": 1})
    [error] = problem(response, 400, "invalid-request")["errors"]
    assert error["field"] == "priorty" and "priority" in error["message"]


# -- scheduled jobs ----------------------------------------------------------------------------


async def test_a_delayed_job_is_scheduled_until_its_time(env: Env, clock: ManualClock) -> None:
    job = await env.create({"endpoint": "/echo", "payload": {"n": 1}, "delay_seconds": 60})
    now = await env.echo()
    assert job["status"] == "scheduled" and not job["finished"]

    async def listed(status: str) -> list[int]:
        page = await env.get("/api/v1/jobs", params={"status": status})
        return [j["id"] for j in page["items"]]

    assert await listed("scheduled") == [job["id"]]
    assert await listed("queued") == [now]
    assert await listed("scheduled,queued") == [now, job["id"]]
    assert (await env.get("/api/v1/stats"))["counts"]["scheduled"] == 1
    early = problem(
        await env.client.get(f"/api/v1/jobs/{job['id']}/result"), 409, "job-not-finished"
    )
    assert early["job_status"] == "scheduled"

    assert await env.executor.run_once() == [now]  # not the scheduled one
    clock.advance(59)
    assert await env.executor.scheduler.run_once() == 0
    clock.advance(2)
    assert await env.executor.scheduler.run_once() == 1
    assert (await env.get(f"/api/v1/jobs/{job['id']}"))["status"] == "queued"
    assert await env.executor.run_once() == [job["id"]]
    assert (await env.get(f"/api/v1/jobs/{job['id']}/result"))["result"]["json"] == {"n": 1}


async def test_a_failed_attempt_waits_its_backoff_then_runs_again(
    env: Env, clock: ManualClock
) -> None:
    body = {"retry_errors": True, "max_attempts": 2, "backoff_seconds": 10}
    job_id = await fail_job(env, "flaky", **body)
    assert await env.executor.run_once() == [job_id]

    waiting = await env.get(f"/api/v1/jobs/{job_id}")
    assert waiting["status"] == "scheduled" and waiting["attempt"] == 1
    assert waiting["last_error"] == "flaky" and waiting["error"] is None
    wait = (at(waiting["run_at"]) - clock.now()).total_seconds()
    assert 8 <= wait <= 12, wait  # 10 s, give or take the jitter

    clock.advance(13)
    assert await env.executor.scheduler.run_once() == 1
    assert await env.executor.run_once() == [job_id]
    ended = await env.get(f"/api/v1/jobs/{job_id}")
    assert ended["status"] == "error" and ended["error"] == "flaky" and ended["attempt"] == 2
    attempts = (await env.get(f"/api/v1/jobs/{job_id}/attempts"))["attempts"]
    assert [(a["attempt"], a["outcome"], a["error"]) for a in attempts] == [
        (1, "error", "flaky"),
        (2, "error", "flaky"),
    ]


async def test_an_attempt_past_its_timeout_ends_timeout(env: Env) -> None:
    job = await env.create(
        {"endpoint": "/sleep", "payload": {"seconds": 30}, "timeout_seconds": 0.1}
    )
    assert await asyncio.wait_for(env.executor.run_once(), 10) == [job["id"]]
    assert (await env.get(f"/api/v1/jobs/{job['id']}"))["status"] == "error"
    [attempt] = (await env.get(f"/api/v1/jobs/{job['id']}/attempts"))["attempts"]
    assert attempt["outcome"] == "timeout" and attempt["finished_at"] is not None


# -- retry one job, and its attempts -----------------------------------------------------------


async def test_retry_a_failed_job_and_see_both_attempts(env: Env, clock: ManualClock) -> None:
    job_id = await fail_job(env, "disk full")
    assert (await env.get(f"/api/v1/jobs/{job_id}/attempts")) == {"id": job_id, "attempts": []}
    await env.executor.run_once()
    assert (await env.get(f"/api/v1/jobs/{job_id}"))["status"] == "error"

    clock.advance(5)
    response = await env.client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200, response.text
    retried = response.json()
    assert retried["id"] == job_id and retried["status"] == "queued"
    assert retried["error"] is None and retried["attempt"] == 1 and not retried["finished"]
    assert retried["request"] == {"encoding": "json", "json": {"message": "disk full"}}
    assert retried == await env.get(f"/api/v1/jobs/{job_id}")  # the job detail, as GET has it

    clock.advance(5)
    assert await env.executor.run_once() == [job_id]
    answer = await env.get(f"/api/v1/jobs/{job_id}/attempts")
    assert answer["id"] == job_id
    first, second = answer["attempts"]
    assert first == {
        "attempt": 1,
        "node": NODE,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:00Z",
        "duration_seconds": 0.0,
        "outcome": "error",
        "error": "disk full",
    }
    assert (second["attempt"], second["outcome"], second["error"]) == (2, "error", "disk full")
    assert second["started_at"] == "2026-01-01T00:00:10Z"


async def test_retry_a_cancelled_job(env: Env) -> None:
    job_id = await env.echo({"x": 1})
    await env.client.post(f"/api/v1/jobs/{job_id}/cancel")
    response = await env.client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert await env.executor.run_once() == [job_id]
    assert (await env.get(f"/api/v1/jobs/{job_id}/result"))["status"] == "done"


async def test_only_a_job_that_ended_error_or_cancelled_can_be_retried(env: Env) -> None:
    done = await env.echo()
    await env.executor.run_once()
    queued = await env.echo()
    scheduled = await env.echo(delay_seconds=60)
    for job_id, status in ((done, "done"), (queued, "queued"), (scheduled, "scheduled")):
        response = await env.client.post(f"/api/v1/jobs/{job_id}/retry")
        refused = problem(response, 409, "job-not-retryable")
        assert (refused["job_id"], refused["job_status"]) == (job_id, status)
        assert status in refused["detail"]
    assert await statuses(env) == {done: "done", queued: "queued", scheduled: "scheduled"}


async def test_a_running_job_cannot_be_retried(db: Database) -> None:
    async for env, _ in engine_env(db, ManualClock()):
        job, run = await env.start_sleeping()
        refused = problem(
            await env.client.post(f"/api/v1/jobs/{job['id']}/retry"), 409, "job-not-retryable"
        )
        assert refused["job_status"] == "running"
        [attempt] = (await env.get(f"/api/v1/jobs/{job['id']}/attempts"))["attempts"]
        assert attempt["outcome"] is None and attempt["finished_at"] is None  # still running
        await env.client.post(f"/api/v1/jobs/{job['id']}/cancel")
        await asyncio.wait_for(run, 10)


async def test_retry_and_attempts_of_missing_and_removed_jobs(env: Env) -> None:
    for path in ("/api/v1/jobs/999/retry", f"/api/v1/jobs/{2**64}/retry"):
        problem(await env.client.post(path), 404, "job-not-found")
    problem(await env.client.get("/api/v1/jobs/999/attempts"), 404, "job-not-found")
    problem(await env.client.post("/api/v1/jobs/abc/retry"), 404, "not-found")

    gone = await fail_job(env, tag="gone", remove_on_complete=True)
    await env.executor.run_once()
    removed = problem(await env.client.post(f"/api/v1/jobs/{gone}/retry"), 410, "job-removed")
    assert (removed["job_id"], removed["job_status"]) == (gone, "error")
    problem(await env.client.get(f"/api/v1/jobs/{gone}/attempts"), 410, "job-removed")
    wrong = problem(await env.client.get("/api/v1/jobs/retry"), 405, "method-not-allowed")
    assert "GET" in wrong["detail"]


# -- bulk retry and cancel ---------------------------------------------------------------------


async def bulk(env: Env, action: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    response = await env.client.post(f"/api/v1/jobs/{action}", json=body, **kwargs)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["action"] == action
    return answer


async def test_bulk_retry_and_cancel_answer_their_counts(env: Env, clock: ManualClock) -> None:
    failed = [await fail_job(env) for _ in range(3)]
    done = await env.echo()
    cancelled = await env.echo()
    await env.client.post(f"/api/v1/jobs/{cancelled}/cancel")
    await env.executor.run_once()
    clock.advance(60)
    later = await env.echo(delay_seconds=600)

    assert await bulk(env, "retry", {"status": "error"}) == {
        "action": "retry",
        "matched": 3,
        "outcomes": {"retried": 3},
        "more": False,
    }
    expected = {**dict.fromkeys(failed, "queued"), done: "done", cancelled: "cancelled"}
    assert await statuses(env) == {**expected, later: "scheduled"}
    assert (await bulk(env, "retry", {"status": "error"}))["matched"] == 0

    answer = await bulk(env, "cancel", {"endpoint": "/fail", "status": ["queued", "running"]})
    assert (answer["matched"], answer["outcomes"]) == (3, {"cancelled": 3})
    answer = await bulk(env, "retry", {"status": ["error", "cancelled"], "endpoint": "/echo"})
    assert (answer["matched"], answer["outcomes"]) == (1, {"retried": 1})
    assert (await statuses(env))[cancelled] == "queued"

    # Time filters: the scheduled job was created a minute after the others.
    since = (clock.now() - timedelta(seconds=1)).isoformat()
    answer = await bulk(env, "cancel", {"created_after": since})
    assert (answer["matched"], answer["outcomes"]) == (1, {"cancelled": 1})
    assert (await statuses(env))[later] == "cancelled"
    answer = await bulk(env, "cancel", {"created_before": since})  # only `cancelled` is active
    assert (answer["matched"], answer["outcomes"]) == (1, {"cancelled": 1})
    nothing = await bulk(env, "cancel", {"created_before": "2000-01-01T00:00:00Z"})
    assert nothing == {"action": "cancel", "matched": 0, "outcomes": {}, "more": False}
    assert await statuses(env) == {
        **dict.fromkeys(failed, "cancelled"),
        done: "done",
        cancelled: "cancelled",
        later: "cancelled",
    }


async def test_bulk_cancel_asks_a_running_job_to_stop(env: Env) -> None:
    job, run = await env.start_sleeping()
    answer = await bulk(env, "cancel", {"status": "running"})
    assert (answer["matched"], answer["outcomes"]) == (1, {"cancel_requested": 1})
    assert await asyncio.wait_for(run, 10) == [job["id"]]
    assert (await env.get(f"/api/v1/jobs/{job['id']}"))["status"] == "cancelled"


async def test_a_bulk_action_stops_at_its_limit_and_says_more(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [await fail_job(env) for _ in range(3)]
    await env.executor.run_once()
    limited = functools.partial(env.service.bulk_action, max_jobs=2)
    monkeypatch.setattr(env.service, "bulk_action", limited)
    first = await bulk(env, "retry", {"endpoint": "/fail"})
    assert (first["matched"], first["outcomes"], first["more"]) == (2, {"retried": 2}, True)
    assert (await statuses(env))[ids[0]] == "error"  # newest first: the oldest is left
    second = await bulk(env, "retry", {"endpoint": "/fail"})
    assert (second["matched"], second["more"]) == (1, False)


BAD_BULKS: list[tuple[str, Any, set[str]]] = [
    ("retry", {}, {"body"}),
    ("cancel", {}, {"body"}),
    ("cancel", [], {"body"}),
    ("cancel", "queued", {"body"}),
    ("retry", {"extra": 1}, {"extra", "body"}),
    ("retry", {"status": "error", "tag": "x"}, {"tag"}),
    ("retry", {"status": "done"}, {"status"}),
    ("retry", {"status": "queued"}, {"status"}),
    ("cancel", {"status": "error"}, {"status"}),
    ("cancel", {"status": ["queued", "finished"]}, {"status"}),
    ("cancel", {"status": []}, {"status"}),
    ("cancel", {"status": 5}, {"status"}),
    ("cancel", {"status": [5]}, {"status"}),
    ("cancel", {"status": None}, {"status"}),
    ("cancel", {"endpoint": ""}, {"endpoint"}),
    ("cancel", {"endpoint": 5}, {"endpoint"}),
    ("cancel", {"endpoint": "/a\x00b"}, {"endpoint"}),
    ("cancel", {"endpoint": None, "status": "queued"}, {"endpoint"}),
    ("cancel", {"created_after": "yesterday"}, {"created_after"}),
    ("cancel", {"created_before": 1767225600}, {"created_before"}),
    ("retry", {"created_before": "2025-01-01T00:00:00"}, {"created_before"}),
]


async def test_bulk_validation_touches_nothing(env: Env) -> None:
    failed = await fail_job(env)
    await env.executor.run_once()
    queued = await env.echo()
    before = await statuses(env)
    for action, body, fields in BAD_BULKS:
        response = await env.client.post(f"/api/v1/jobs/{action}", json=body)
        assert bad_fields(response) == fields, (action, body)
    for action in ("retry", "cancel"):
        for content in (b"", b"  ", b"{", b"null"):
            response = await env.client.post(
                f"/api/v1/jobs/{action}",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert bad_fields(response) == {"body"}, content
        response = await env.client.post(
            f"/api/v1/jobs/{action}",
            content=b"status=error",
            headers={"Content-Type": "text/plain"},
        )
        problem(response, 415, "unsupported-media-type")
    assert await statuses(env) == before and before[failed] == "error"
    assert before[queued] == "queued"


# -- users -------------------------------------------------------------------------------------


@pytest.fixture
async def users(db: Database, clock: ManualClock) -> AsyncIterator[tuple[Env, dict[str, Any]]]:
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("bob", "pw-bob")
    await auth.add_user("root", "pw-root", admin=True)
    creds = {
        "alice": basic("alice", "pw-alice"),
        "bob": basic("bob", "pw-bob"),
        "root": basic("root", "pw-root"),
    }
    async for env, _ in engine_env(db, clock, authenticator=auth):
        yield env, creds


async def test_the_new_routes_need_credentials(users: tuple[Env, dict[str, Any]]) -> None:
    env, _ = users
    for method, path in (
        ("POST", "/api/v1/jobs/1/retry"),
        ("GET", "/api/v1/jobs/1/attempts"),
        ("POST", "/api/v1/jobs/retry"),
        ("POST", "/api/v1/jobs/cancel"),
    ):
        response = await env.client.request(method, path, json={"status": "error"})
        problem(response, 401, "unauthorized")


async def test_users_retry_and_cancel_only_their_own_jobs(
    users: tuple[Env, dict[str, Any]],
) -> None:
    env, creds = users
    body = {"endpoint": "/fail", "payload": {}}
    alices = (await env.create(body, headers=creds["alice"]))["id"]
    bobs = (await env.create(body, headers=creds["bob"]))["id"]
    await env.executor.run_once()
    alice = creds["alice"]

    problem(
        await env.client.post(f"/api/v1/jobs/{bobs}/retry", headers=alice), 404, "job-not-found"
    )
    problem(
        await env.client.get(f"/api/v1/jobs/{bobs}/attempts", headers=alice), 404, "job-not-found"
    )
    answer = await bulk(env, "retry", {"status": "error"}, headers=alice)
    assert (answer["matched"], answer["outcomes"]) == (1, {"retried": 1})
    assert await statuses(env) == {alices: "queued", bobs: "error"}
    answer = await bulk(env, "cancel", {"endpoint": "/fail"}, headers=creds["bob"])
    assert answer["matched"] == 0  # bob's job is finished, alice's is not his
    assert await statuses(env) == {alices: "queued", bobs: "error"}

    retried = await env.client.post(f"/api/v1/jobs/{bobs}/retry", headers=creds["bob"])
    assert retried.status_code == 200 and retried.json()["created_by"] == "bob"
    attempts = await env.get(f"/api/v1/jobs/{bobs}/attempts", headers=creds["bob"])
    assert [a["outcome"] for a in attempts["attempts"]] == ["error"]
    answer = await bulk(env, "cancel", {"status": "queued"}, headers=creds["root"])
    assert (answer["matched"], answer["outcomes"]) == (2, {"cancelled": 2})
