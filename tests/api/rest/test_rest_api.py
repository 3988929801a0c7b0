"""The native REST API (/api/v1): the real app over a real database (SQLite, PostgreSQL).

Requests go in-process through httpx's ASGI transport; the executor runs jobs when a test says
so (`run_once`), so every state is reached on purpose. One test at the end drives a real
`jobstore serve` process over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import snappy

from jobstore.api.app import create_app
from jobstore.api.rest import RestConfig
from jobstore.core.accounts import Authenticator
from jobstore.core.jobs import JobService
from jobstore.domain.clock import Clock, ManualClock
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from tests.support.avro import SLEEP_REQUEST, SLEEP_RESPONSE, avro_write
from tests.support.e2e import Server, closed_port
from tests.support.http import basic
from tests.support.rest import PROBLEM, Env, bad_fields, problem, rest_env


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def make_env(
    db: Database, *, retain_done: str = "forever", clock: Clock | None = None, **rest: Any
) -> AsyncIterator[Env]:
    """The app over a node whose executor the test drives (`executor.run_once()`)."""
    config = RestConfig(**{"max_wait_seconds": 10.0, **rest})
    async for env in rest_env(
        db, config, node_id="rest-test", retain_done=retain_done, clock=clock
    ):
        yield env


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for e in make_env(db, retain_done="7d"):
        yield e


# -- create ------------------------------------------------------------------------------------


async def test_create_json_job_then_follow_it_to_its_result(env: Env) -> None:
    response = await env.client.post(
        "/api/v1/jobs", json={"endpoint": "/echo", "payload": {"hello": ["world", 1]}}
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["endpoint"] == "/echo" and job["status"] == "queued" and not job["finished"]
    assert job["request_encoding"] == "json" and len(job["tag"]) == 32  # generated
    assert job["created_by"] is None and job["error"] is None and job["progress"] == 0

    detail = await env.get(response.headers["location"])
    assert detail["id"] == job["id"] and detail["tag"] == job["tag"]
    assert detail["request"] == {"encoding": "json", "json": {"hello": ["world", 1]}}
    assert detail["response"] is None and detail["options"] == {"job_tag": job["tag"]}

    assert await env.executor.run_once() == [job["id"]]
    detail = await env.get(f"/api/v1/jobs/{job['id']}")
    assert detail["status"] == "done" and detail["finished"] and detail["progress"] == 100
    assert detail["response"] == {"encoding": "json", "json": {"hello": ["world", 1]}}
    result = await env.get(f"/api/v1/jobs/{job['id']}/result")
    assert result == {
        "id": job["id"],
        "tag": job["tag"],
        "status": "done",
        "result": {"encoding": "json", "json": {"hello": ["world", 1]}},
        "error": None,
    }


async def test_a_missing_payload_is_the_empty_object(env: Env) -> None:
    job = await env.create({"endpoint": "/echo"})
    detail = await env.get(f"/api/v1/jobs/{job['id']}")
    assert detail["request"] == {"encoding": "json", "json": {}}
    null_job = await env.create({"endpoint": "/echo", "payload": None})
    assert (await env.get(f"/api/v1/jobs/{null_job['id']}"))["request"]["json"] is None


async def test_any_json_value_round_trips(env: Env) -> None:
    payload = {"nul": "a\x00b", "text": "é ✓ 😀", "big": 2**70, "nested": [[[{}]]], "f": 1.5}
    job = await env.create({"endpoint": "/echo", "payload": payload})
    await env.executor.run_once()
    assert (await env.get(f"/api/v1/jobs/{job['id']}/result"))["result"]["json"] == payload


@pytest.mark.parametrize("encoding", ["binary", "snappy"])
async def test_create_binary_avro_job(env: Env, encoding: str) -> None:
    data = avro_write(SLEEP_REQUEST, {"seconds": 0.01})
    sent = snappy.compress(data) if encoding == "snappy" else data
    body: dict[str, Any] = {"endpoint": "/sleep", "payload_base64": b64(sent)}
    if encoding == "snappy":
        body["encoding"] = "snappy"
    job = await env.create(body)
    assert job["request_encoding"] == encoding
    detail = await env.get(f"/api/v1/jobs/{job['id']}")
    assert detail["request"] == {
        "encoding": encoding,
        "base64": b64(sent),
        "json": {"seconds": 0.01},
    }

    await env.executor.run_once()
    result = await env.get(f"/api/v1/jobs/{job['id']}/result")
    assert result["status"] == "done"
    assert result["result"] == {
        "encoding": "binary",
        "base64": b64(avro_write(SLEEP_RESPONSE, {"slept": 0.01})),
        "json": {"slept": 0.01},
    }


async def test_raw_bytes_for_an_endpoint_without_schema(env: Env) -> None:
    wrapped = base64.encodebytes(bytes(range(256))).decode()  # lines of 76, as `base64` writes
    job = await env.create({"endpoint": "/echo", "payload_base64": wrapped})
    await env.executor.run_once()
    result = await env.get(f"/api/v1/jobs/{job['id']}/result")
    assert result["result"] == {"encoding": "binary", "base64": b64(bytes(range(256)))}


async def test_a_payload_json_cannot_carry_is_shown_not_a_500(env: Env) -> None:
    """An Avro double may be NaN; JSON has no NaN, so the view shows null."""
    nan = avro_write(SLEEP_REQUEST, {"seconds": float("nan")})
    job = await env.create({"endpoint": "/sleep", "payload_base64": b64(nan)})
    detail = await env.get(f"/api/v1/jobs/{job['id']}")
    assert detail["request"] == {
        "encoding": "binary",
        "base64": b64(nan),
        "json": {"seconds": None},
    }


async def test_same_tag_same_request_is_the_same_job(env: Env) -> None:
    body = {"endpoint": "/echo", "payload": {"n": 1}, "tag": "nightly-1"}
    first = await env.client.post("/api/v1/jobs", json=body)
    again = await env.client.post("/api/v1/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["tag"] == "nightly-1"
    assert again.headers["location"] == first.headers["location"]

    changed = await env.client.post("/api/v1/jobs", json={**body, "payload": {"n": 2}})
    conflict = problem(changed, 409, "tag-conflict")
    assert conflict["tag"] == "nightly-1" and conflict["job_id"] == first.json()["id"]
    assert await env.sql("SELECT count(*) FROM jobs") == [(1,)]


async def test_idempotency_key_header_is_the_tag(env: Env) -> None:
    body = {"endpoint": "/echo", "payload": [1]}
    key = {"Idempotency-Key": "order-77"}
    first = await env.client.post("/api/v1/jobs", json=body, headers=key)
    assert first.status_code == 201 and first.json()["tag"] == "order-77"
    replay = await env.client.post("/api/v1/jobs", json=body, headers=key)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    same = await env.client.post("/api/v1/jobs", json={**body, "tag": "order-77"}, headers=key)
    assert same.status_code == 200
    differs = await env.client.post("/api/v1/jobs", json={**body, "tag": "other"}, headers=key)
    assert bad_fields(differs) == {"Idempotency-Key"}
    bad = await env.client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "a b"})
    assert bad_fields(bad) == {"Idempotency-Key"}
    other = await env.client.post("/api/v1/jobs", json={**body, "payload": [2]}, headers=key)
    problem(other, 409, "tag-conflict")


BAD_CREATES: list[tuple[dict[str, Any], set[str]]] = [
    ({"payload": {}}, {"endpoint"}),
    ({"endpoint": ""}, {"endpoint"}),
    ({"endpoint": 7}, {"endpoint"}),
    ({"endpoint": "/echo", "payload": 1, "payload_base64": "AA=="}, {"payload_base64"}),
    ({"endpoint": "/echo", "payload_base64": "not base64!"}, {"payload_base64"}),
    ({"endpoint": "/echo", "payload_base64": 12}, {"payload_base64"}),
    ({"endpoint": "/echo", "payload_base64": "AA==", "encoding": "json"}, {"encoding"}),
    ({"endpoint": "/echo", "payload": 1, "encoding": "binary"}, {"encoding"}),
    ({"endpoint": "/echo", "encoding": "xml"}, {"encoding"}),
    ({"endpoint": "/echo", "tag": "has space"}, {"tag"}),
    ({"endpoint": "/echo", "tag": "x" * 129}, {"tag"}),
    ({"endpoint": "/echo", "tag": 5}, {"tag"}),
    ({"endpoint": "/echo", "remove_on_complete": "yes"}, {"remove_on_complete"}),
    ({"endpoint": "/echo", "payload": "\ud800"}, {"payload"}),
    ({"endpoint": "/sleep", "payload": {"seconds": "soon"}}, {"payload"}),
    ({"endpoint": "/sleep", "payload_base64": b64(b"\xff")}, {"payload_base64"}),
    (
        {"endpoint": "/sleep", "payload_base64": "AAAA", "encoding": "snappy"},
        {"payload_base64"},
    ),
    ({"endpoint": "/echo", "extra": 1, "tags": "x"}, {"extra", "tags"}),
    ({"tag": "!", "remove_on_complete": 1}, {"endpoint", "tag", "remove_on_complete"}),
]


async def test_create_validation_names_every_bad_field(env: Env) -> None:
    for body, fields in BAD_CREATES:
        content = json.dumps(body).encode()  # \u escapes: a lone surrogate survives the trip
        response = await env.client.post(
            "/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        assert bad_fields(response) == fields, body
    for content in (
        b"",
        b"{",
        b"[1]",
        b'"text"',
        b'{"endpoint": "/echo", "payload": NaN}',
        b"\xff",
    ):
        response = await env.client.post(
            "/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        assert bad_fields(response) == {"body"}, content
        assert response.json()["errors"][0]["in"] == "body"
    assert await env.sql("SELECT count(*) FROM jobs") == [(0,)]


async def test_unknown_endpoint(env: Env) -> None:
    response = await env.client.post("/api/v1/jobs", json={"endpoint": "/nope", "payload": {}})
    body = problem(response, 400, "unknown-endpoint")
    assert body["endpoint"] == "/nope" and "/echo" in body["detail"]


async def test_media_types(env: Env) -> None:
    body = b'{"endpoint": "/echo"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await env.client.post(
            "/api/v1/jobs", content=body, headers={"Content-Type": content_type}
        )
        problem(response, 415, "unsupported-media-type")
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/x+json",
    ):
        response = await env.client.post(
            "/api/v1/jobs", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 201, (content_type, response.text)
    response = await env.client.post("/api/v1/jobs", content=body)  # no Content-Type: JSON
    assert response.status_code == 201
    prune = await env.client.post("/api/v1/prune", content=b"{}", headers={"Content-Type": "a/b"})
    problem(prune, 415, "unsupported-media-type")


async def test_body_too_large(db: Database) -> None:
    async for env in make_env(db, max_body_bytes=1024):
        small = await env.client.post("/api/v1/jobs", json={"endpoint": "/echo", "payload": "x"})
        assert small.status_code == 201
        big = {"endpoint": "/echo", "payload": "x" * 2000}
        body = problem(await env.client.post("/api/v1/jobs", json=big), 413, "payload-too-large")
        assert body["max_body_bytes"] == 1024

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
            for _ in range(10):
                yield b" " * 200

        streamed = await env.client.post(
            "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        problem(streamed, 413, "payload-too-large")


# -- get, wait, result -------------------------------------------------------------------------


async def test_get_by_id_and_by_tag(env: Env) -> None:
    job_id = await env.echo({"a": 1}, tag="by-tag")
    by_id = await env.get(f"/api/v1/jobs/{job_id}")
    by_tag = await env.get("/api/v1/jobs/tag/by-tag")
    assert by_id == by_tag and by_id["tag"] == "by-tag"

    missing = problem(await env.client.get("/api/v1/jobs/999"), 404, "job-not-found")
    assert missing["job_id"] == 999
    missing = problem(await env.client.get("/api/v1/jobs/tag/nope"), 404, "job-not-found")
    assert missing["tag"] == "nope"
    problem(await env.client.get(f"/api/v1/jobs/tag/{quote('bad tag!')}"), 404, "job-not-found")
    problem(await env.client.get(f"/api/v1/jobs/{2**70}"), 404, "job-not-found")
    problem(await env.client.get("/api/v1/jobs/0"), 404, "job-not-found")
    problem(await env.client.get("/api/v1/jobs/abc"), 404, "not-found")
    problem(await env.client.get("/api/v1/jobs/-1"), 404, "not-found")


async def test_long_poll_returns_when_the_executor_finishes_the_job(env: Env) -> None:
    job = await env.create({"endpoint": "/sleep", "payload": {"seconds": 0.3}, "tag": "slow"})

    async def run_later() -> list[int]:
        await asyncio.sleep(0.2)
        return await env.executor.run_once()

    started = time.monotonic()
    polled, ran = await asyncio.gather(
        env.client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 8}), run_later()
    )
    elapsed = time.monotonic() - started
    assert ran == [job["id"]]
    assert polled.status_code == 200 and polled.json()["status"] == "done"
    assert polled.json()["response"]["json"] == {"slept": 0.3}
    assert 0.4 < elapsed < 4, elapsed  # answered when the job ended, not at the deadline


async def test_long_poll_ends_at_the_deadline_with_the_job_as_it_is(env: Env) -> None:
    job_id = await env.echo(tag="waits")
    for path in (f"/api/v1/jobs/{job_id}", "/api/v1/jobs/tag/waits"):
        started = time.monotonic()
        job = await env.get(path, params={"wait": "0.3"})
        assert job["status"] == "queued"
        assert 0.25 < time.monotonic() - started < 3
    finished = await env.echo()
    await env.executor.run_once()
    started = time.monotonic()
    assert (await env.get(f"/api/v1/jobs/{finished}", params={"wait": 10}))["finished"]
    assert time.monotonic() - started < 1  # a finished job is answered at once


async def test_bad_wait(env: Env) -> None:
    job_id = await env.echo(tag="w")
    for wait in ("-1", "10.5", "abc", "nan", "inf", "1e400"):
        for path in (f"/api/v1/jobs/{job_id}", "/api/v1/jobs/tag/w"):
            response = await env.client.get(path, params={"wait": wait})
            assert bad_fields(response) == {"wait"}, wait


async def test_result_before_and_after_the_job_finishes(env: Env) -> None:
    job_id = await env.echo({"x": 1})
    early = problem(await env.client.get(f"/api/v1/jobs/{job_id}/result"), 409, "job-not-finished")
    assert early["job_id"] == job_id and early["job_status"] == "queued"
    await env.executor.run_once()
    result = await env.get(f"/api/v1/jobs/{job_id}/result")
    assert result["status"] == "done" and result["result"]["json"] == {"x": 1}
    problem(await env.client.get("/api/v1/jobs/12345/result"), 404, "job-not-found")


async def test_result_of_an_error_job(env: Env) -> None:
    job = await env.create({"endpoint": "/fail", "payload": {"message": "disk full"}})
    await env.executor.run_once()
    result = await env.get(f"/api/v1/jobs/{job['id']}/result")
    assert result == {
        "id": job["id"],
        "tag": job["tag"],
        "status": "error",
        "result": None,
        "error": "disk full",
    }
    detail = await env.get(f"/api/v1/jobs/{job['id']}")
    assert detail["status"] == "error" and detail["error"] == "disk full"


async def test_a_removed_job_answers_410(env: Env) -> None:
    body = {"endpoint": "/echo", "payload": {}, "tag": "gone", "remove_on_complete": True}
    job = await env.create(body)
    await env.executor.run_once()
    for path in (f"/api/v1/jobs/{job['id']}", "/api/v1/jobs/tag/gone"):
        gone = problem(await env.client.get(path), 410, "job-removed")
        assert (gone["job_id"], gone["tag"], gone["job_status"]) == (job["id"], "gone", "done")
        assert datetime.fromisoformat(gone["finished_at"]) <= datetime.now(UTC)
        assert "remove_job_on_complete" in gone["detail"]
    problem(await env.client.get(f"/api/v1/jobs/{job['id']}/result"), 410, "job-removed")
    cancel = problem(await env.client.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "job-finished")
    assert cancel["job_status"] == "done"
    # Re-sending its create answers the removed job from its tombstone.
    again = await env.client.post("/api/v1/jobs", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job["id"] and again.json()["status"] == "done"


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_a_queued_job(env: Env) -> None:
    job_id = await env.echo()
    response = await env.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json() == {"id": job_id, "outcome": "cancelled"}
    assert (await env.get(f"/api/v1/jobs/{job_id}"))["status"] == "cancelled"
    again = problem(await env.client.post(f"/api/v1/jobs/{job_id}/cancel"), 409, "job-finished")
    assert again["outcome"] == "already_done" and again["job_status"] == "cancelled"
    assert await env.executor.run_once() == []  # nothing left to run


async def test_cancel_a_running_job(env: Env) -> None:
    job, run = await env.start_sleeping()
    response = await env.client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json() == {"id": job["id"], "outcome": "cancel_requested"}
    assert await asyncio.wait_for(run, 10) == [job["id"]]
    assert (await env.get(f"/api/v1/jobs/{job['id']}"))["status"] == "cancelled"


async def test_cancel_a_finished_or_missing_job(env: Env) -> None:
    job_id = await env.echo()
    await env.executor.run_once()
    done = problem(await env.client.post(f"/api/v1/jobs/{job_id}/cancel"), 409, "job-finished")
    assert (done["job_id"], done["outcome"], done["job_status"]) == (job_id, "already_done", "done")
    problem(await env.client.post("/api/v1/jobs/777/cancel"), 404, "job-not-found")
    problem(await env.client.post(f"/api/v1/jobs/{2**64}/cancel"), 404, "job-not-found")


# -- list, stats, endpoints --------------------------------------------------------------------


async def test_list_pages_through_every_job_once_newest_first(env: Env) -> None:
    ids = [await env.echo(i) for i in range(11)]
    seen: list[int] = []
    url: str | None = "/api/v1/jobs?limit=4"
    pages = 0
    while url is not None:
        page = await env.get(url)
        seen += [j["id"] for j in page["items"]]
        assert page["next_before"] == (page["items"][-1]["id"] if page["next"] else None)
        url = page["next"]
        pages += 1
    assert seen == sorted(ids, reverse=True) and pages == 3
    # A page that ends exactly at the last job says so: no empty page after it.
    exact = await env.get("/api/v1/jobs", params={"limit": 11})
    assert len(exact["items"]) == 11 and exact["next"] is None and exact["next_before"] is None
    default = await env.get("/api/v1/jobs")
    assert len(default["items"]) == 11
    assert set(default["items"][0]) >= {"id", "tag", "status", "endpoint", "created_at"}
    assert "request" not in default["items"][0]  # summaries only


async def test_list_filters(env: Env) -> None:
    done = await env.echo(tag="t-done")
    failed = (await env.create({"endpoint": "/fail", "payload": {"message": "x"}}))["id"]
    await env.executor.run_once()
    queued = [await env.echo(tag=f"t-q{i}") for i in range(3)]
    cancelled = await env.echo()
    await env.client.post(f"/api/v1/jobs/{cancelled}/cancel")

    async def ids(**params: Any) -> list[int]:
        return [j["id"] for j in (await env.get("/api/v1/jobs", params=params))["items"]]

    assert await ids(status="done") == [done]
    assert await ids(status="queued,error") == [*reversed(queued), failed]
    assert await ids(status=["cancelled", "done"]) == [cancelled, done]
    assert await ids(endpoint="/fail") == [failed]
    assert await ids(tag="t-q1") == [queued[1]]
    assert await ids(tag="nope") == []
    assert await ids(before=queued[1]) == [queued[0], failed, done]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids(created_after=future) == []
    assert len(await ids(created_after=past, created_before=future)) == 6
    assert await ids(created_before=past) == []
    # Filters carry over to the next page.
    page = await env.get("/api/v1/jobs", params={"status": "queued", "limit": 2})
    assert page["next"] is not None and "status=queued" in page["next"]
    rest = await env.get(page["next"])
    assert [j["id"] for j in rest["items"]] == [queued[0]] and rest["next"] is None


BAD_LISTS: list[tuple[dict[str, str], str]] = [
    ({"status": "finished"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"before": "-3"}, "before"),
    ({"before": "9" * 40}, "before"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2025-01-01T00:00:00"}, "created_before"),  # no offset
    ({"created_after": "0001-01-01T00:00:00+01:00"}, "created_after"),
    ({"endpoint": "/a\x00b"}, "endpoint"),
]


async def test_list_validation(env: Env) -> None:
    for params, field in BAD_LISTS:
        response = await env.client.get("/api/v1/jobs", params=params)
        assert bad_fields(response) == {field}, params


async def test_stats(db: Database) -> None:
    clock = ManualClock()
    async for env in make_env(db, clock=clock):
        nothing = {"scheduled": 0, "queued": 0, "running": 0, "done": 0, "error": 0, "cancelled": 0}
        assert (await env.get("/api/v1/stats")) == {"counts": nothing, "capped_at": 10000}
        await env.echo()
        await env.create({"endpoint": "/fail", "payload": {}})
        await env.executor.run_once()
        await env.echo()
        await env.echo(delay_seconds=60)
        assert (await env.get("/api/v1/stats"))["counts"] == nothing  # cached for a second
        clock.advance(1.1)
        stats = await env.get("/api/v1/stats")
        assert stats["counts"] == {**nothing, "scheduled": 1, "queued": 1, "done": 1, "error": 1}


async def test_endpoints(env: Env) -> None:
    items = (await env.get("/api/v1/endpoints"))["items"]
    by_name = {e["name"]: e for e in items}
    assert [e["name"] for e in items] == ["/echo", "/fail", "/sleep"]
    assert by_name["/sleep"]["request_schema"] == SLEEP_REQUEST
    assert by_name["/sleep"]["response_schema"] == SLEEP_RESPONSE
    assert by_name["/echo"]["raw"] is True and by_name["/echo"]["request_schema"] is None
    assert by_name["/echo"]["description"].startswith("Return the request unchanged")
    assert all(e["retryable"] is True and e["max_attempts"] is None for e in items)


# -- prune -------------------------------------------------------------------------------------


async def test_prune_with_a_retention_override(env: Env) -> None:
    done = [await env.echo(i) for i in range(3)]
    failed = (await env.create({"endpoint": "/fail", "payload": {}}))["id"]
    await env.executor.run_once()
    queued = await env.echo()

    # No body: the configured 7 days for done, so nothing yet. An empty body has no media type.
    configured = await env.client.post("/api/v1/prune", headers={"Content-Type": "text/plain"})
    assert configured.status_code == 200, configured.text
    assert configured.json() == {
        "deleted": {"done": 0},
        "total": 0,
        "skipped": False,
        "retention": {"done": "1w"},
    }

    response = await env.client.post(
        "/api/v1/prune", json={"retention": {"done": "0s", "error": "forever"}}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "deleted": {"done": 3},
        "total": 3,
        "skipped": False,
        "retention": {"done": "0s"},
    }
    left = await env.sql("SELECT job_id FROM jobs ORDER BY job_id")
    assert left == [(failed,), (queued,)]
    problem(await env.client.get(f"/api/v1/jobs/{done[0]}"), 404, "job-not-found")

    response = await env.client.post("/api/v1/prune", json={"retention": {"error": "0s"}})
    assert response.json()["deleted"] == {"error": 1}
    assert await env.sql("SELECT job_id FROM jobs") == [(queued,)]
    assert (await env.client.post("/api/v1/prune", json={})).json()["retention"] == {"done": "1w"}


BAD_PRUNES: list[tuple[Any, set[str]]] = [
    ({"retention": {"queued": "1d"}}, {"retention.queued"}),
    ({"retention": {"done": "7 years"}}, {"retention.done"}),
    ({"retention": {"done": 7}}, {"retention.done"}),
    ({"retention": ["done"]}, {"retention"}),
    ({"keep": {}}, {"keep"}),
    ([], {"body"}),
]


async def test_prune_validation(env: Env) -> None:
    for body, fields in BAD_PRUNES:
        response = await env.client.post("/api/v1/prune", json=body)
        assert bad_fields(response) == fields, body


async def test_prune_without_a_pruner(db: Database) -> None:
    """A core built without a retention pass (every node has one) answers 409."""
    app = create_app(JobService(db, default_registry()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        problem(await client.post("/api/v1/prune"), 409, "pruning-disabled")


# -- auth --------------------------------------------------------------------------------------


@pytest.fixture
async def secured(db: Database) -> AsyncIterator[tuple[Env, dict[str, dict[str, str]]]]:
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("bob", "pw-bob")
    await auth.add_user("root", "pw-root", admin=True)
    _, token = await auth.create_token("alice", project="p9")
    creds = {
        "alice": basic("alice", "pw-alice"),
        "bob": basic("bob", "pw-bob"),
        "root": basic("root", "pw-root"),
        "token": {"Authorization": f"Bearer {token}"},
    }
    async for env in make_env(db, authenticator=auth):
        yield env, creds


NO_CREDENTIALS: list[dict[str, str]] = [
    {},
    basic("alice", "wrong"),
    basic("nobody", "pw"),
    {"Authorization": "Bearer jst_not-a-token"},
    {"Authorization": "Basic !!!"},
    {"Authorization": "Digest abc"},
]


async def test_every_route_needs_credentials(
    secured: tuple[Env, dict[str, dict[str, str]]],
) -> None:
    env, _ = secured
    routes = [
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/1"),
        ("GET", "/api/v1/jobs/tag/x"),
        ("GET", "/api/v1/jobs/1/result"),
        ("POST", "/api/v1/jobs/1/cancel"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/endpoints"),
        ("POST", "/api/v1/prune"),
        ("GET", "/api/v1/nothing-here"),
    ]
    for headers in NO_CREDENTIALS:
        for method, path in routes:
            response = await env.client.request(method, path, headers=headers, json={})
            problem(response, 401, "unauthorized")
            challenge = response.headers["www-authenticate"]
            assert challenge == 'Basic realm="jobstore", Bearer realm="jobstore"'
        document = await env.client.get("/api/v1/openapi.json", headers=headers)
        assert document.status_code == 200  # public: clients read it before they log in
    assert {"basic": []} in document.json()["security"] and {} not in document.json()["security"]


async def test_users_see_only_their_own_jobs(
    secured: tuple[Env, dict[str, dict[str, str]]],
) -> None:
    env, creds = secured
    alices = (await env.create({"endpoint": "/echo", "tag": "a1"}, headers=creds["token"]))["id"]
    bobs = (await env.create({"endpoint": "/echo", "tag": "b1"}, headers=creds["bob"]))["id"]
    assert await env.sql("SELECT created_by, project FROM jobs ORDER BY job_id") == [
        ("alice", "p9"),
        ("bob", None),
    ]

    async def listed(who: str) -> list[int]:
        page = await env.get("/api/v1/jobs", headers=creds[who])
        return [j["id"] for j in page["items"]]

    assert await listed("alice") == [alices]
    assert await listed("bob") == [bobs]
    assert await listed("root") == [bobs, alices]
    stats = await env.get("/api/v1/stats", headers=creds["alice"])
    assert stats["counts"]["queued"] == 1
    assert (await env.get("/api/v1/stats", headers=creds["root"]))["counts"]["queued"] == 2

    alice = creds["alice"]
    for path in (f"/api/v1/jobs/{bobs}", "/api/v1/jobs/tag/b1", f"/api/v1/jobs/{bobs}/result"):
        problem(await env.client.get(path, headers=alice), 404, "job-not-found")
    problem(
        await env.client.get(f"/api/v1/jobs/{bobs}", params={"wait": 1}, headers=alice),
        404,
        "job-not-found",
    )
    cancel = await env.client.post(f"/api/v1/jobs/{bobs}/cancel", headers=alice)
    problem(cancel, 404, "job-not-found")
    assert (await env.get(f"/api/v1/jobs/{bobs}", headers=creds["bob"]))["status"] == "queued"
    # Another user's tag is taken, and the answer says nothing about whose job holds it.
    taken = await env.client.post(
        "/api/v1/jobs", json={"endpoint": "/echo", "tag": "b1"}, headers=alice
    )
    assert "job_id" not in problem(taken, 409, "tag-conflict")

    assert (await env.get(f"/api/v1/jobs/{bobs}", headers=creds["root"]))["created_by"] == "bob"
    cancelled = await env.client.post(f"/api/v1/jobs/{bobs}/cancel", headers=creds["root"])
    assert cancelled.status_code == 202


async def test_only_admins_prune(secured: tuple[Env, dict[str, dict[str, str]]]) -> None:
    env, creds = secured
    problem(await env.client.post("/api/v1/prune", headers=creds["alice"]), 403, "forbidden")
    response = await env.client.post(
        "/api/v1/prune", json={"retention": {"done": "0s"}}, headers=creds["root"]
    )
    assert response.status_code == 200 and response.json()["total"] == 0


# -- the rest of /api/v1, the document, outages ------------------------------------------------


async def test_unknown_paths_and_methods_are_problems(env: Env) -> None:
    problem(await env.client.get("/api/v1/nothing"), 404, "not-found")
    problem(await env.client.post("/api/v1/jobs/1/delete"), 404, "not-found")
    wrong = problem(await env.client.delete("/api/v1/jobs"), 405, "method-not-allowed")
    assert "DELETE" in wrong["detail"]
    response = await env.client.put("/api/v1/jobs/1")
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD"


async def test_the_document_describes_every_route(env: Env) -> None:
    document = await env.get("/api/v1/openapi.json")
    assert document["openapi"] == "3.1.0"
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert operations == {
        "GET /api/v1/openapi.json",
        "POST /api/v1/jobs",
        "GET /api/v1/jobs",
        "GET /api/v1/jobs/{job_id}",
        "GET /api/v1/jobs/tag/{tag}",
        "GET /api/v1/jobs/{job_id}/result",
        "POST /api/v1/jobs/{job_id}/cancel",
        "POST /api/v1/jobs/{job_id}/retry",
        "GET /api/v1/jobs/{job_id}/attempts",
        "POST /api/v1/jobs/{job_id}/complete",
        "POST /api/v1/jobs/{job_id}/progress",
        "POST /api/v1/jobs/retry",
        "POST /api/v1/jobs/cancel",
        "GET /api/v1/stats",
        "GET /api/v1/endpoints",
        "POST /api/v1/prune",
        "POST /api/v1/schedules",
        "GET /api/v1/schedules",
        "GET /api/v1/schedules/{name}",
        "PATCH /api/v1/schedules/{name}",
        "DELETE /api/v1/schedules/{name}",
        "POST /api/v1/schedules/{name}/pause",
        "POST /api/v1/schedules/{name}/resume",
        "POST /api/v1/schedules/{name}/fire",
        "GET /api/v1/limits",
        "GET /api/v1/limits/{key}",
        "PUT /api/v1/limits/{key}",
        "DELETE /api/v1/limits/{key}",
    }
    schemas = document["components"]["schemas"]
    assert {"Job", "JobDetail", "Problem", "JobList", "CreateJob"} <= set(schemas)
    assert schemas["CreateJob"]["properties"]["endpoint"]["enum"] == ["/echo", "/fail", "/sleep"]
    wait = document["paths"]["/api/v1/jobs/{job_id}"]["get"]["parameters"][1]
    assert wait["schema"]["maximum"] == 10.0  # this node's max_wait_seconds
    assert {} in document["security"]  # auth is off here: credentials are optional
    assert set(document["components"]["securitySchemes"]) == {"basic", "bearer"}


async def test_an_unreachable_database_answers_503() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{closed_port()}/jobs", pool_size=1)
    try:
        async for env in make_env(db):
            requests = [
                env.client.post("/api/v1/jobs", json={"endpoint": "/echo"}),
                env.client.get("/api/v1/jobs/1"),
                env.client.get("/api/v1/jobs"),
                env.client.post("/api/v1/jobs/1/cancel"),
                env.client.get("/api/v1/stats"),
            ]
            for request in requests:
                response = await request
                body = problem(response, 503, "service-unavailable")
                assert response.headers["retry-after"] == "5"
                assert "127.0.0.1" not in body["detail"]  # the operator's detail stays in logs
    finally:
        await db.dispose()


# -- a real server -----------------------------------------------------------------------------


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    node = Server(database_url, tmp_path, node_id="rest-e2e")
    try:
        yield node.start()
    finally:
        node.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_real_server_creates_waits_and_answers(server: Server) -> None:
    client = server.client
    key = {"Idempotency-Key": "e2e-job-1"}
    body = {"endpoint": "/sleep", "payload": {"seconds": 0.2}}
    created = client.post("/api/v1/jobs", json=body, headers=key)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"/api/v1/jobs/{created.json()['id']}"
    replay = client.post("/api/v1/jobs", json=body, headers=key)
    assert replay.status_code == 200 and replay.headers["location"] == location

    finished = client.get(location, params={"wait": 20}, timeout=30)
    assert finished.status_code == 200, server.logs()
    assert finished.json()["status"] == "done" and finished.json()["node"] == "rest-e2e"
    result = client.get(f"{location}/result")
    assert result.json()["result"]["json"] == {"slept": 0.2}
    by_tag = client.get("/api/v1/jobs/tag/e2e-job-1")
    assert by_tag.json()["id"] == created.json()["id"]
    missing = client.get("/api/v1/jobs/99999")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    document = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/jobs/{job_id}" in document["paths"]
