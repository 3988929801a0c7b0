"""--kinetica-upstream against a stand-in Kinetica (a real HTTP server, tests/support/
kinetica_upstream.py), on SQLite and PostgreSQL: a job of an endpoint the node does not define
runs on the upstream, in the encoding the client chose, and the upstream's `gpudb_response`
decides how it ends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import snappy
import sqlalchemy as sa

from jobstore.api.kinetica import KineticaConfig
from jobstore.cli.node import Node, node_for_tests
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import BadOption, ConfigError, UnknownEndpoint
from jobstore.domain.models import Encoding, Job, JobState, Payload
from jobstore.endpoints.registry import Endpoint, default_registry
from jobstore.store import Database
from tests.support.avro import avro_read, avro_write
from tests.support.kinetica import Api
from tests.support.kinetica_upstream import (
    ALTER_TABLE_REQUEST,
    ALTER_TABLE_RESPONSE,
    CONTENT_TYPES,
    ENCODINGS,
    SHOW_TABLE_REQUEST,
    SHOW_TABLE_RESPONSE,
    Outage,
    StandInKinetica,
    request_payload,
)
from tests.support.upstream import free_port, run_due, upstream_node

ALTER = {"table_name": "orders", "action": "comment", "value": "Größe ✓", "options": {}}
RETRIES = {"retry_errors": "true", "max_attempts": "5", "backoff_seconds": "10"}


@pytest.fixture
def kinetica() -> Iterator[StandInKinetica]:
    with StandInKinetica() as k:
        yield k


def kinetica_node(db: Database, tmp_path: Path, kinetica: StandInKinetica, **kwargs: Any) -> Any:
    return upstream_node(db, None, tmp_path, kinetica_upstream=kinetica.url, **kwargs)


async def create(
    node: Node,
    endpoint: str,
    encoding: str,
    schema: dict[str, Any],
    record: dict[str, Any],
    **options: str,
) -> int:
    payload = request_payload(encoding, schema, record)
    return (await node.jobs.create_job(endpoint, payload, options)).job_id


async def job(node: Node, job_id: int) -> Job:
    return await node.jobs.get_job(job_id=job_id)


def answer_of(done: Job, schema: dict[str, Any]) -> Any:
    """The job's response decoded as a client of /get/job must: Avro bytes, or JSON text."""
    if done.response_encoding is Encoding.JSON:
        assert done.response_data in (None, b"")
        return json.loads(done.response_text or "")
    assert done.response_encoding is Encoding.BINARY and not done.response_text
    return avro_read(schema, done.response_data or b"")


async def all_rows(db: Database) -> str:
    text: list[str] = []
    async with db.reading() as conn:
        for table in ("jobs", "job_attempts"):
            text += map(str, (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all())
    assert text
    return " ".join(text)


# -- the wire ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_each_encoding_reaches_kinetica_as_stored_and_its_answer_is_the_response(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, encoding: str
) -> None:
    async with kinetica_node(db, tmp_path, kinetica) as node:
        job_id = await create(
            node, "/alter/table", encoding, ALTER_TABLE_REQUEST, ALTER, job_tag="alter-1"
        )
        stored = (await job(node, job_id)).request
        assert await node.executor.run_once() == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE, done.status_map
    assert done.status_map["http_status"] == "200"
    assert answer_of(done, ALTER_TABLE_RESPONSE) == {
        **{k: ALTER[k] for k in ("table_name", "action", "value")},
        "info": {"previous_value": "", "user": ""},
    }
    assert kinetica.tables["orders"]["comment"] == ALTER["value"]
    [call] = kinetica.calls("/alter/table")
    assert call.encoding == encoding and call.request == ALTER
    assert call.headers["content-type"] == CONTENT_TYPES[encoding]
    assert call.headers["accept"] == CONTENT_TYPES[encoding]
    # Sent as it was stored: the JSON text, the Avro bytes, the snappy block (not unpacked).
    assert call.body == (stored.text.encode() if stored.text is not None else stored.data)
    if encoding == "snappy":
        assert call.body == snappy.compress(avro_write(ALTER_TABLE_REQUEST, ALTER))
    assert call.headers["idempotency-key"] == f"jobstore-{job_id}-alter-1"
    assert call.headers["x-jobstore-job-id"] == str(job_id)
    assert call.headers["x-jobstore-attempt"] == "1"
    assert "authorization" not in call.headers


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_second_endpoint_and_a_declared_one_run_side_by_side(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, encoding: str
) -> None:
    """/show/table runs upstream; the node's own /echo runs here, in the same claim."""
    async with kinetica_node(db, tmp_path, kinetica) as node:
        shown = await create(
            node, "/show/table", encoding, SHOW_TABLE_REQUEST, {"table_name": "", "options": {}}
        )
        echoed = (
            await node.jobs.create_job("/echo", Payload(Encoding.JSON, text='{"here": 1}'))
        ).job_id
        assert sorted(await node.executor.run_once()) == sorted([shown, echoed])
        show, echo = await job(node, shown), await job(node, echoed)
    assert show.status is JobState.DONE and echo.status is JobState.DONE
    assert answer_of(show, SHOW_TABLE_RESPONSE) == {
        "table_name": "",
        "table_names": ["customers", "orders"],
        "properties": [kinetica.tables["customers"], kinetica.tables["orders"]],
        "info": {"user": ""},
    }
    assert json.loads(echo.response_text or "") == {"here": 1}
    assert [c.path for c in kinetica.calls()] == ["/show/table"]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_through_the_kinetica_facade_create_and_get_job_carry_the_upstreams_answer(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, encoding: str
) -> None:
    """The facade hands an undeclared name to the registry (not refusing it first), and
    /get/job answers what Kinetica answered, in the request's family."""
    inner = request_payload(encoding, ALTER_TABLE_REQUEST, ALTER)
    payload = inner.text if inner.text is not None else inner.data
    assert payload is not None
    async with kinetica_node(db, tmp_path, kinetica) as node:
        app = node.app(run_background=False, kinetica=KineticaConfig())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as client:
            api = Api(client, encoding)
            created = await api.create("/alter/table", encoding, payload, {"job_tag": "via-api"})
            assert await node.executor.run_once() == [created["job_id"]]
            got = await api.get(created["job_id"])
    assert got["endpoint"] == "/alter/table" and got["job_status"] == "DONE", got
    expected = {k: ALTER[k] for k in ("table_name", "action", "value")}
    if encoding == "json":
        assert got["response_encoding"] == "json" and got["job_response"] == b""
        answer = json.loads(got["job_response_str"])
    else:
        assert got["response_encoding"] == "binary" and got["job_response_str"] == ""
        answer = avro_read(ALTER_TABLE_RESPONSE, got["job_response"])
    assert {k: answer[k] for k in expected} == expected
    assert kinetica.calls("/alter/table")[0].request == ALTER


# -- how a job ends ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_an_error_envelope_ends_the_job_error_with_kinetica_message_at_once(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, encoding: str
) -> None:
    record = {"table_name": "missing", "options": {}}
    async with kinetica_node(db, tmp_path, kinetica) as node:
        job_id = await create(node, "/show/table", encoding, SHOW_TABLE_REQUEST, record, **RETRIES)
        assert await node.executor.run_once() == [job_id]
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert ended.status_map["error_message"] == f"{kinetica.host}: Table 'missing' does not exist"
    assert ended.status_map["http_status"] == "400"
    assert not ended.response_data and not ended.response_text
    assert len(kinetica.calls("/show/table")) == 1  # Kinetica's ERROR is final: no retry


@pytest.mark.parametrize(
    "outage",
    [
        Outage(503),  # a proxy in front of a restarting Kinetica
        Outage(503, "System shutting down", envelope=True),
        Outage(400, "Kinetica is offline", envelope=True),
    ],
    ids=["503-plain", "503-envelope", "offline-envelope"],
)
async def test_an_unavailable_kinetica_is_retried_under_retry_errors(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, clock: ManualClock, outage: Outage
) -> None:
    kinetica.fail_next(2, outage)
    async with kinetica_node(db, tmp_path, kinetica, clock=clock) as node:
        job_id = await create(node, "/alter/table", "binary", ALTER_TABLE_REQUEST, ALTER, **RETRIES)
        assert await node.executor.run_once() == [job_id]
        for _ in range(2):
            waiting = await job(node, job_id)
            assert waiting.status is JobState.SCHEDULED, waiting.status_map
            assert waiting.status_map["last_error"].startswith(f"{kinetica.host}")
            assert outage.message in waiting.status_map["last_error"] or (
                str(outage.status) in waiting.status_map["last_error"]
            )
            assert await run_due(node, clock, job_id) == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE and done.attempt == 3
    assert answer_of(done, ALTER_TABLE_RESPONSE)["value"] == ALTER["value"]
    calls = kinetica.calls("/alter/table")
    assert [c.headers["x-jobstore-attempt"] for c in calls] == ["1", "2", "3"]
    assert len({c.headers["idempotency-key"] for c in calls}) == 1
    assert all(c.body == calls[0].body for c in calls)


async def test_a_503_is_retried_by_default_and_ends_the_job_when_the_job_says_no_retries(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    kinetica.fail_next(2)
    async with kinetica_node(db, tmp_path, kinetica) as node:
        waits = await create(node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER)
        assert await node.executor.run_once() == [waits]
        waiting = await job(node, waits)
        assert waiting.status is JobState.SCHEDULED and waiting.max_attempts == 10
        job_id = await create(
            node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER, retry_errors="false"
        )
        assert await node.executor.run_once() == [job_id]
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert kinetica.host in ended.status_map["error_message"]
    assert "503" in ended.status_map["error_message"]
    assert kinetica.tables["orders"]["comment"] == ""  # it never ran


async def test_a_kinetica_that_is_down_then_up_again_still_runs_the_job(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    kinetica = StandInKinetica(port=free_port())
    async with kinetica_node(db, tmp_path, kinetica, clock=clock) as node:
        job_id = await create(node, "/alter/table", "snappy", ALTER_TABLE_REQUEST, ALTER, **RETRIES)
        assert await node.executor.run_once() == [job_id]
        waiting = await job(node, job_id)
        assert f"could not reach {kinetica.host}" in waiting.status_map["last_error"]
        with kinetica:
            assert await run_due(node, clock, job_id) == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE and done.attempt == 2
    assert [c.headers["x-jobstore-attempt"] for c in kinetica.calls()] == ["2"]


async def test_kinetica_dying_mid_call_is_retried_with_the_same_idempotency_key(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    kinetica = StandInKinetica(port=free_port()).up()
    try:
        kinetica.hold_next(1)
        async with kinetica_node(db, tmp_path, kinetica, clock=clock) as node:
            job_id = await create(
                node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER, **RETRIES
            )
            run = asyncio.create_task(node.executor.run_once())
            await asyncio.to_thread(kinetica.wait_for_calls, "/alter/table", 1)
            await asyncio.to_thread(kinetica.down)  # the held call is dropped unanswered
            assert await asyncio.wait_for(run, 10) == [job_id]
            waiting = await job(node, job_id)
            assert waiting.status is JobState.SCHEDULED, waiting.status_map
            kinetica.up()
            assert await run_due(node, clock, job_id) == [job_id]
            done = await job(node, job_id)
    finally:
        kinetica.down()
    assert done.status is JobState.DONE and done.attempt == 2
    calls = kinetica.calls("/alter/table")
    assert (
        len(calls) == 2
        and calls[0].headers["idempotency-key"] == calls[1].headers["idempotency-key"]
    )


OBJECT_DATA_STR = {"status": "OK", "message": "", "data_type": "x", "data": "", "data_str": {}}


@pytest.mark.parametrize(
    ("encoding", "body", "excerpt"),
    [
        ("binary", "<html>captive portal</html>", "captive portal"),
        ("json", "<html>captive portal</html>", "captive portal"),
        ("json", json.dumps(OBJECT_DATA_STR), '"data_str": {}'),  # an object is no data_str
    ],
    ids=["binary-html", "json-html", "json-object-data_str"],
)
async def test_an_answer_that_is_not_a_gpudb_response_ends_the_job_at_once(
    db: Database, tmp_path: Path, kinetica: StandInKinetica, encoding: str, body: str, excerpt: str
) -> None:
    kinetica.fail_next(1, Outage(200, body))
    async with kinetica_node(db, tmp_path, kinetica) as node:
        job_id = await create(node, "/alter/table", encoding, ALTER_TABLE_REQUEST, ALTER, **RETRIES)
        await node.executor.run_once()
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    message = ended.status_map["error_message"]
    assert message.startswith(f"{kinetica.host} answered 200 with no gpudb_response")
    assert excerpt in message
    assert not ended.response_text and not ended.response_data


async def test_an_endpoint_kinetica_does_not_have_ends_the_job_at_once(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    async with kinetica_node(db, tmp_path, kinetica) as node:
        job_id = await create(node, "/no/such/thing", "json", ALTER_TABLE_REQUEST, ALTER, **RETRIES)
        await node.executor.run_once()
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert ended.status_map["error_message"].startswith(f"{kinetica.host} answered 404")
    assert [c.path for c in kinetica.calls()] == ["/no/such/thing"]


async def test_a_cancel_aborts_the_call_to_kinetica(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    kinetica.hold_next(1)
    async with kinetica_node(db, tmp_path, kinetica) as node:
        job_id = await create(node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER)
        run = asyncio.create_task(node.executor.run_once())
        await asyncio.to_thread(kinetica.wait_for_calls, "/alter/table", 1)
        await node.jobs.cancel_jobs([job_id])
        assert await asyncio.wait_for(run, 5) == [job_id]  # Kinetica still holds the call
        ended = await job(node, job_id)
    kinetica.release()
    assert ended.status is JobState.CANCELLED


async def test_a_kinetica_behind_a_path_prefix_gets_the_endpoint_after_the_prefix(
    db: Database, tmp_path: Path
) -> None:
    with StandInKinetica(prefix="/gpudb-0") as kinetica:
        url = kinetica.url + "/"  # a trailing slash is not doubled
        async with upstream_node(db, None, tmp_path, kinetica_upstream=url) as node:
            job_id = await create(node, "/alter/table", "snappy", ALTER_TABLE_REQUEST, ALTER)
            await node.executor.run_once()
            done = await job(node, job_id)
    assert done.status is JobState.DONE, done.status_map
    assert [c.url_path for c in kinetica.calls()] == ["/gpudb-0/alter/table"]


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1:9191", "http://alice:pw@127.0.0.1:9191", "http://h:1/?x=1", "127.0.0.1"],
)
async def test_an_upstream_url_jobstore_cannot_use_is_refused_when_the_node_is_built(
    db: Database, url: str
) -> None:
    with pytest.raises(ConfigError, match="--kinetica-upstream"):
        node_for_tests(db, kinetica_upstream=url)


# -- credentials -------------------------------------------------------------------------------


async def test_basic_credentials_reach_kinetica_and_appear_nowhere_else(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pw-kinetica-7731"
    header = "Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()
    env = {
        "JOBSTORE_KINETICA_UPSTREAM_USER": "alice",
        "JOBSTORE_KINETICA_UPSTREAM_PASSWORD": secret,
    }
    caplog.set_level(logging.DEBUG)
    with StandInKinetica(require_auth=header) as kinetica:
        kinetica.fail_next(1)  # one failed attempt too: its error is logged and stored
        async with kinetica_node(db, tmp_path, kinetica, env=env) as node:
            job_id = await create(
                node,
                "/alter/table",
                "binary",
                ALTER_TABLE_REQUEST,
                ALTER,
                **{**RETRIES, "backoff_seconds": "0.01"},
            )
            assert await node.executor.run_once() == [job_id]
            await asyncio.sleep(0.1)
            await node.executor.scheduler.run_once()
            assert await node.executor.run_once() == [job_id]
            done = await job(node, job_id)
            app = node.app(run_background=False)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://node.test"
            ) as client:
                listing = (await client.get("/api/v1/endpoints")).json()
                detail = (await client.get(f"/api/v1/jobs/{job_id}")).text
    assert done.status is JobState.DONE, done.status_map
    assert answer_of(done, ALTER_TABLE_RESPONSE)["info"]["user"] == "alice"
    assert [c.headers["authorization"] for c in kinetica.calls()] == [header, header]
    assert listing["other_names"] == {"kind": "kinetica-upstream", "upstream": kinetica.host}
    seen = " ".join([caplog.text, json.dumps(listing), detail, await all_rows(db)])
    for leaked in (secret, header.split()[1]):
        assert leaked not in seen


async def test_a_token_is_sent_as_bearer_and_wins_over_a_user(db: Database, tmp_path: Path) -> None:
    env = {"JOBSTORE_KINETICA_UPSTREAM_TOKEN": "tok-55", "JOBSTORE_KINETICA_UPSTREAM_USER": "bob"}
    with StandInKinetica(require_auth="Bearer tok-55") as kinetica:
        async with kinetica_node(db, tmp_path, kinetica, env=env) as node:
            job_id = await create(node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER)
            await node.executor.run_once()
            done = await job(node, job_id)
    assert done.status is JobState.DONE, done.status_map
    assert [c.headers["authorization"] for c in kinetica.calls()] == ["Bearer tok-55"]


async def test_refused_credentials_end_the_job_without_a_retry(
    db: Database, tmp_path: Path
) -> None:
    with StandInKinetica(require_auth="Basic c29tZW9uZTplbHNl") as kinetica:
        async with kinetica_node(db, tmp_path, kinetica) as node:
            job_id = await create(
                node, "/alter/table", "binary", ALTER_TABLE_REQUEST, ALTER, **RETRIES
            )
            await node.executor.run_once()
            ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert ended.status_map["error_message"].startswith(f"{kinetica.host}: Unauthorized")
    assert ended.status_map["http_status"] == "401"
    assert len(kinetica.calls()) == 1


# -- what is refused at create ---------------------------------------------------------------


NOT_KINETICA_NAMES = [
    "alter/table",
    "/Alter/Table",
    "/alter//table",
    "/alter/table/",
    "/alter/../admin",
    "/alter/table?x=1",
    "/alter-table",
    "/a/b/c/d/e/f/g",
    "/alter/tablé",
    "/",
    "",
]


async def test_a_name_that_is_not_a_kinetica_endpoint_is_refused_at_create(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    accepted = []
    async with kinetica_node(db, tmp_path, kinetica) as node:
        for name in NOT_KINETICA_NAMES:
            try:
                await create(node, name, "json", ALTER_TABLE_REQUEST, ALTER)
            except UnknownEndpoint:
                continue
            accepted.append(name)
        # The longest accepted shape, for contrast: six segments.
        await create(node, "/a/b/c/d/e/f", "json", ALTER_TABLE_REQUEST, ALTER)
        async with db.reading() as conn:
            names = (await conn.execute(sa.text("SELECT endpoint FROM jobs"))).scalars().all()
    assert accepted == []
    assert names == ["/a/b/c/d/e/f"]
    assert kinetica.calls() == []


async def test_concurrency_key_is_refused_for_an_upstream_job_but_not_a_declared_one(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    async with kinetica_node(db, tmp_path, kinetica) as node:
        with pytest.raises(BadOption) as refused:
            await create(
                node, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER, concurrency_key="c1"
            )
        assert refused.value.option == "concurrency_key"
        assert "Kinetica upstream" in str(refused.value)
        payload = Payload(Encoding.JSON, text="{}")
        await node.jobs.create_job("/echo", payload, {"concurrency_key": "c1"})
        async with db.reading() as conn:
            names = (await conn.execute(sa.text("SELECT endpoint FROM jobs"))).scalars().all()
    assert names == ["/echo"]


async def test_a_node_without_an_upstream_still_refuses_unknown_endpoints(
    db: Database, tmp_path: Path
) -> None:
    async with upstream_node(db, None, tmp_path) as node:
        with pytest.raises(UnknownEndpoint) as refused:
            await create(node, "/alter/table", "binary", ALTER_TABLE_REQUEST, ALTER)
        assert "/alter/table" in str(refused.value)
        app = node.app(run_background=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node.test"
        ) as client:
            listing = (await client.get("/api/v1/endpoints")).json()
            message = await Api(client, "json").create_error(
                "/alter/table", "json", json.dumps(ALTER)
            )
    assert listing["other_names"] is None
    assert "unknown endpoint '/alter/table'" in message


async def resize(request: Any, ctx: Any) -> dict[str, bool]:
    return {"resized": True}


async def test_a_node_with_an_upstream_leaves_endpoints_only_other_nodes_declare(
    db: Database, tmp_path: Path, kinetica: StandInKinetica
) -> None:
    """Before jobs.upstream, the node with the upstream claimed /resize/image (declared only
    on the other node) and sent it to Kinetica, which ended it `error`."""
    registry = default_registry()
    registry.add(Endpoint("/resize/image", resize))
    async with upstream_node(db, None, tmp_path, node_id="other", registry=registry) as other:
        payload = Payload(Encoding.JSON, text="{}")
        resized = (await other.jobs.create_job("/resize/image", payload)).job_id
        async with kinetica_node(db, tmp_path, kinetica, node_id="front") as front:
            altered = await create(front, "/alter/table", "json", ALTER_TABLE_REQUEST, ALTER)
            assert await front.executor.run_once() == [altered]
            assert (await job(front, resized)).status is JobState.QUEUED
            assert await other.executor.run_once() == [resized]
            assert (await job(front, altered)).status is JobState.DONE
            assert (await job(front, resized)).status is JobState.DONE
    assert [c.path for c in kinetica.calls()] == ["/alter/table"]
