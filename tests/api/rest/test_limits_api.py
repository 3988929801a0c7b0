"""Concurrency limits over the REST API (/api/v1/limits), on SQLite and PostgreSQL.

The real app over a node whose clock the test holds, reached in-process through httpx (the
harness of tests/support/rest.py). Keyed jobs are created over the API and started by the
store's limited claim, as an executor's would start them, but no handler runs: the running
counts stay put. An endpoint of the test's own declares a concurrency_limit. At the end,
schemathesis fuzzes the limit routes against the OpenAPI document with keys that exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis

from jobstore.api.rest import RestConfig
from jobstore.api.rest.limits import limit_document
from jobstore.api.rest.openapi import openapi_document
from jobstore.core.accounts import Authenticator
from jobstore.core.limits import MAX_LIMIT, KeyState
from jobstore.domain.clock import ManualClock
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import EndpointRegistry, default_registry
from jobstore.store import Database
from tests.support.fuzz import fuzz_operations, fuzzed_app
from tests.support.http import basic
from tests.support.rest import Env, bad_fields, problem, rest_env

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
LIMITS = "/api/v1/limits"


@endpoint("/per-customer", concurrency_limit=2)
async def per_customer(request: Any, ctx: JobContext) -> Any:
    """Never run here: its jobs are claimed by the test, which never finishes them."""
    return request


def registry() -> EndpointRegistry:
    """The built-ins and /per-customer (at most 2 running jobs per key)."""
    made = default_registry()
    made.add(getattr(per_customer, MARK))
    return made


async def make_env(db: Database, **rest: Any) -> AsyncIterator[Env]:
    async for env in rest_env(
        db, RestConfig(**rest), clock=ManualClock(START), registry=registry()
    ):
        yield env


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for made in make_env(db):
        yield made


def url(key: str) -> str:
    return f"{LIMITS}/{quote(key, safe='')}"


async def put(env: Env, key: str, body: Any, **kwargs: Any) -> httpx.Response:
    return await env.client.put(url(key), json=body, **kwargs)


async def keyed(env: Env, key: str, count: int = 1, endpoint: str = "/echo") -> list[int]:
    """`count` jobs of `endpoint` with the concurrency key `key`, created over the API."""
    return [
        int((await env.create({"endpoint": endpoint, "concurrency_key": key}))["id"])
        for _ in range(count)
    ]


async def start_jobs(env: Env) -> list[int]:
    """Start what the limits allow, as an executor's limited claim would (without running
    the handlers: the jobs stay running)."""
    now = env.service.clock.now()
    async with env.db.transaction() as conn:
        got = await env.db.limits.job_claim_limited(
            conn,
            node="rest-node",
            endpoints=env.service.registry.limits(),
            limit=100,
            now=now,
            lease_until=now + timedelta(minutes=5),
        )
    return [c.job_id for c in got.claimed]


async def listed(env: Env, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """GET /limits, by key, each without its key."""
    page = await env.get(LIMITS, **kwargs)
    return {doc.pop("key"): doc for doc in page["limits"]}


def usage(doc: dict[str, Any]) -> tuple[int, int | None, int, str | None]:
    return doc["running"], doc["max_running"], doc["queued"], doc["source"]


# -- set, read, list, remove -----------------------------------------------------------------


async def test_set_read_list_change_and_remove(env: Env) -> None:
    assert await env.get(LIMITS) == {"limits": []}
    response = await put(env, "acme", {"max_running": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    made = response.json()
    assert made == {
        "key": "acme",
        "max_running": 3,
        "source": "named",
        "running": 0,
        "queued": 0,
        "updated_at": "2026-06-01T12:00:00Z",
        "updated_by": None,
        "links": {"self": "/api/v1/limits/acme"},
    }
    assert await env.get(f"{LIMITS}/acme") == made
    assert await env.get(LIMITS) == {"limits": [made]}

    changed = (await put(env, "acme", {"max_running": 0})).json()
    assert changed["max_running"] == 0 and changed["source"] == "named"
    await put(env, "a-first", {"max_running": MAX_LIMIT})
    assert list(await listed(env)) == ["a-first", "acme"]

    response = await env.client.delete(f"{LIMITS}/acme")
    assert response.status_code == 204 and response.content == b""
    found = problem(await env.client.get(f"{LIMITS}/acme"), 404, "limit-not-found")
    assert found["key"] == "acme"
    again = problem(await env.client.delete(f"{LIMITS}/acme"), 404, "limit-not-found")
    assert again["detail"] == "no concurrency limit is set for key 'acme'"
    assert list(await listed(env)) == ["a-first"]


async def test_the_list_counts_running_and_queued_jobs(env: Env) -> None:
    await put(env, "acme", {"max_running": 2})
    await put(env, "frozen", {"max_running": 0})
    await put(env, "spare", {"max_running": 5})
    await keyed(env, "acme", 3)
    await keyed(env, "frozen")
    await keyed(env, "free-for-all")
    await env.echo()  # no key: on no line
    assert len(await start_jobs(env)) == 3  # acme 2, free-for-all 1; frozen held

    keys = await listed(env)
    assert {key: usage(doc) for key, doc in keys.items()} == {
        "acme": (2, 2, 1, "named"),
        "free-for-all": (1, None, 0, None),
        "frozen": (0, 0, 1, "named"),
        "spare": (0, 5, 0, "named"),
    }
    free = keys["free-for-all"]
    assert (free["updated_at"], free["updated_by"]) == (None, None)
    assert free["links"] == {"self": "/api/v1/limits/free-for-all"}
    # A key without a named limit is found while it has jobs...
    assert usage(await env.get(f"{LIMITS}/free-for-all")) == (1, None, 0, None)
    # ... but has nothing to remove.
    problem(await env.client.delete(f"{LIMITS}/free-for-all"), 404, "limit-not-found")

    # Raising a limit lets the claim start more; the set answers the counts of the moment.
    raised = (await put(env, "frozen", {"max_running": 1})).json()
    assert usage(raised) == (0, 1, 1, "named")
    assert len(await start_jobs(env)) == 1
    assert usage(await env.get(f"{LIMITS}/frozen")) == (1, 1, 0, "named")


async def test_an_endpoint_limit_and_a_named_one_over_it(env: Env) -> None:
    await keyed(env, "cust-1", 3, endpoint="/per-customer")
    assert len(await start_jobs(env)) == 2
    from_endpoint = await env.get(f"{LIMITS}/cust-1")
    assert usage(from_endpoint) == (2, 2, 1, "endpoint")
    assert (from_endpoint["updated_at"], from_endpoint["updated_by"]) == (None, None)
    problem(await env.client.delete(f"{LIMITS}/cust-1"), 404, "limit-not-found")

    named = (await put(env, "cust-1", {"max_running": 3})).json()
    assert usage(named) == (2, 3, 1, "named")
    assert len(await start_jobs(env)) == 1
    assert usage(await env.get(f"{LIMITS}/cust-1")) == (3, 3, 0, "named")

    # Removed: back to the endpoint's 2, with 3 running (none is stopped).
    assert (await env.client.delete(f"{LIMITS}/cust-1")).status_code == 204
    assert usage(await env.get(f"{LIMITS}/cust-1")) == (3, 2, 0, "endpoint")


# -- keys: any printable text -------------------------------------------------------------------

ODD_KEYS = ["a/b", "50% off", "tenant:42", "a/../b", "x?y#z", "trailing/", "é ünïcode", "+&="]


async def test_keys_with_any_printable_characters(env: Env) -> None:
    for n, key in enumerate(ODD_KEYS, start=1):
        response = await put(env, key, {"max_running": n})
        assert response.status_code == 200, (key, response.text)
        doc = response.json()
        assert doc["key"] == key and doc["max_running"] == n
        assert doc["links"]["self"] == url(key)
        assert await env.get(doc["links"]["self"]) == doc
    assert list(await listed(env)) == sorted(ODD_KEYS)
    # The slash may travel raw as well: the route takes the rest of the path.
    raw = await env.client.put(f"{LIMITS}/a/b", json={"max_running": 9})
    assert raw.status_code == 200 and raw.json()["key"] == "a/b"
    assert (await env.get(f"{LIMITS}/a/b"))["max_running"] == 9
    assert (await env.client.delete(f"{LIMITS}/a/b")).status_code == 204
    assert (await env.client.delete(url("50% off"))).status_code == 204
    assert "a/b" not in await listed(env) and "50% off" not in await listed(env)

    # A job's key shows up as it is, and its link finds it.
    await keyed(env, "tenant:42/eu")
    [doc] = [d for d in (await env.get(LIMITS))["limits"] if d["key"] == "tenant:42/eu"]
    assert doc["links"]["self"] == "/api/v1/limits/tenant%3A42%2Feu"
    assert usage(await env.get(doc["links"]["self"])) == (0, None, 1, None)


async def test_dot_keys_are_refused_on_put_and_reached_as_2e(env: Env) -> None:
    for key in (".", ".."):
        encoded = key.replace(".", "%2E")
        response = await env.client.put(f"{LIMITS}/{encoded}", json={"max_running": 1})
        errors = problem(response, 400, "invalid-request")["errors"]
        assert errors == [
            {
                "in": "path",
                "field": "key",
                "message": "'.' and '..' cannot be a key in a path (clients resolve them "
                "away); set it on the dashboard's limits page",
            }
        ]
    # Sent bare, a client resolves them away: "." is /api/v1/limits, ".." leaves it.
    problem(await env.client.put(f"{LIMITS}/.", json={"max_running": 1}), 405, "method-not-allowed")
    gone = await env.client.put(f"{LIMITS}/../nope", json={"max_running": 1})
    assert problem(gone, 404, "not-found")["instance"] == "/api/v1/nope"
    assert await env.get(LIMITS) == {"limits": []}

    # Jobs may carry them: the list shows them, with a link that reaches them.
    await keyed(env, "..")
    [doc] = (await env.get(LIMITS))["limits"]
    assert doc["key"] == ".." and doc["links"]["self"] == "/api/v1/limits/%2E%2E"
    assert usage(await env.get(doc["links"]["self"])) == (0, None, 1, None)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"max_running": -1}, {"max_running"}),
        ({"max_running": MAX_LIMIT + 1}, {"max_running"}),
        ({"max_running": 10**400}, {"max_running"}),
        ({"max_running": "3"}, {"max_running"}),
        ({"max_running": 2.5}, {"max_running"}),
        ({"max_running": 2.0}, {"max_running"}),
        ({"max_running": True}, {"max_running"}),
        ({"max_running": None}, {"max_running"}),
        ({}, {"max_running"}),
        ({"max_running": 1, "key": "acme"}, {"key"}),
        ({"limit": 1}, {"limit", "max_running"}),
        ([1], {"body"}),
        (3, {"body"}),
        (None, {"body"}),
    ],
)
async def test_a_bad_body_names_its_field(env: Env, body: Any, fields: set[str]) -> None:
    response = await put(env, "acme", body)
    assert bad_fields(response) == fields, response.text
    assert await env.get(LIMITS) == {"limits": []}


async def test_a_bad_key_a_bad_body_and_the_wrong_media_type(env: Env) -> None:
    for key, field in (("x" * 129, "key"), ("bell\x07", "key"), ("nul\x00", "path")):
        response = await put(env, key, {"max_running": 1})
        [error] = problem(response, 400, "invalid-request")["errors"]
        assert (error["in"], error["field"]) == ("path", field), response.text
    empty = await env.client.put(f"{LIMITS}/", json={"max_running": 1})
    assert bad_fields(empty) == {"key"}
    assert "must not be empty" in empty.json()["detail"]
    # A bad key and a bad body: both named at once.
    both = await env.client.put(f"{LIMITS}/%2E", json={"max_running": 1, "x": 1})
    assert bad_fields(both) == {"key", "x"}
    no_body = await env.client.put(url("acme"))
    assert bad_fields(no_body) == {"body"}
    not_json = await env.client.put(
        url("acme"), content=b'{"max_running": ', headers={"content-type": "application/json"}
    )
    assert bad_fields(not_json) == {"body"}
    text = await env.client.put(
        url("acme"), content=b"max_running=1", headers={"content-type": "text/plain"}
    )
    problem(text, 415, "unsupported-media-type")
    assert await env.get(LIMITS) == {"limits": []}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_missing_key_is_404(env: Env, method: str) -> None:
    for path in ("nope", "no%20such/key", "x" * 200, "", "%2E%2E"):
        response = await env.client.request(method, f"{LIMITS}/{path}")
        assert problem(response, 404, "limit-not-found")["key"] is not None
    # No key holds a NUL: refused at the door, before any route.
    problem(await env.client.request(method, f"{LIMITS}/%00"), 400, "invalid-request")


async def test_a_newline_in_the_path_is_still_answered_with_a_problem(env: Env) -> None:
    """Starlette's path parameters stop at a newline; the limit routes (and the catch-all)
    take it, so it is answered as any other key or path is."""
    for method, path, status, slug in [
        ("GET", f"{LIMITS}/line%0Abreak", 404, "limit-not-found"),
        ("DELETE", f"{LIMITS}/line%0Abreak", 404, "limit-not-found"),
        ("PUT", f"{LIMITS}/line%0Abreak", 400, "invalid-request"),
        ("GET", "/api/v1/no%0Asuch", 404, "not-found"),
    ]:
        response = await env.client.request(method, path, json={"max_running": 1})
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == f"/api/v1/problems/{slug}"


async def test_other_methods_are_405(env: Env) -> None:
    response = await env.client.post(LIMITS, json={"max_running": 1})
    assert problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD"
    response = await env.client.patch(f"{LIMITS}/acme", json={"max_running": 1})
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"


# -- authentication -----------------------------------------------------------------------------


async def test_with_authentication_everyone_reads_and_only_admins_write(db: Database) -> None:
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("ops", "pw-ops", admin=True)
    alice, ops = basic("alice", "pw-alice"), basic("ops", "pw-ops")
    async for env in make_env(db, authenticator=auth):
        problem(await env.client.get(LIMITS), 401, "unauthorized")
        problem(await put(env, "acme", {"max_running": 1}), 401, "unauthorized")
        problem(await env.client.delete(url("acme")), 401, "unauthorized")

        refused = problem(
            await put(env, "acme", {"max_running": 1}, headers=alice), 403, "forbidden"
        )
        assert "only administrators" in refused["detail"]
        # Refused before its body is read: no hint whether it would have been valid.
        problem(await put(env, "acme", {"nonsense": 1}, headers=alice), 403, "forbidden")
        made = await put(env, "acme", {"max_running": 1}, headers=ops)
        assert made.status_code == 200 and made.json()["updated_by"] == "ops"

        # Every user sees every key, and everyone's jobs in its counts.
        await env.create({"endpoint": "/echo", "concurrency_key": "acme"}, headers=ops)
        await env.create({"endpoint": "/echo", "concurrency_key": "acme"}, headers=alice)
        seen = await env.get(url("acme"), headers=alice)
        assert usage(seen) == (0, 1, 2, "named") and seen["updated_by"] == "ops"
        assert list(await listed(env, headers=alice)) == ["acme"]

        problem(await env.client.delete(url("acme"), headers=alice), 403, "forbidden")
        problem(await env.client.delete(url("nope"), headers=alice), 403, "forbidden")
        assert (await env.client.delete(url("acme"), headers=ops)).status_code == 204
        assert usage(await env.get(url("acme"), headers=alice)) == (0, None, 2, None)


# -- the OpenAPI document -----------------------------------------------------------------------


def test_the_document_agrees_with_the_code() -> None:
    document = openapi_document(max_wait_seconds=1.0, auth_required=True)
    schemas = document["components"]["schemas"]
    state = KeyState("k", 1, True, 0, 0, START)
    assert schemas["Limit"]["required"] == list(limit_document(state))
    assert list(schemas["Limit"]["properties"]) == list(limit_document(state))
    assert schemas["SetLimit"]["properties"]["max_running"]["maximum"] == MAX_LIMIT


SEEDS = {"seed-a": 2, "a/b": 0, "50% off": 1}
QUEUED_KEY = "queued-key"  # no named limit: found by its queued job


def test_the_limit_routes_match_the_openapi_document(database_url: str) -> None:
    """Every answer of the limit routes, valid requests and invalid ones, is declared (its
    status, content type, body and headers), for keys that exist and one that does not; the
    seeds are put back before each request, so a DELETE does not end the test's reach.
    (test_rest_schemathesis.py fuzzes every route too, but with random keys.)"""
    seen: dict[str, set[int]] = {}
    with fuzzed_app(database_url, "limits-fuzz") as app:

        def send(case: schemathesis.Case) -> httpx.Response:
            for key, limit in SEEDS.items():
                app.runner.run(app.node.limits.set(key, limit))
            return app.send(case)

        job = {"endpoint": "/echo", "concurrency_key": QUEUED_KEY}
        assert app.runner.run(app.client.post("/api/v1/jobs", json=job)).status_code == 201
        document = app.runner.run(app.client.get("/api/v1/openapi.json")).json()
        keys = [*SEEDS, QUEUED_KEY, "no-such-key"]
        document["components"]["parameters"]["LimitKey"]["schema"] = {"enum": keys}
        schema = schemathesis.openapi.from_dict(document)
        fuzz_operations(schema.include(path_regex="^/api/v1/limits"), send, seen)
    print({label: sorted(codes) for label, codes in seen.items()})
    assert seen["GET /api/v1/limits"] == {200}
    assert {200, 404} <= seen["GET /api/v1/limits/{key}"]
    assert {200, 400} <= seen["PUT /api/v1/limits/{key}"]
    assert {204, 404} <= seen["DELETE /api/v1/limits/{key}"]
