"""The core: create validation, tag idempotency, lookups by id and tag, cancel hooks."""

from __future__ import annotations

import asyncio

import pytest
import snappy

from jobstore.core.jobs import JobService
from jobstore.domain.errors import (
    BadRequest,
    DecodeError,
    JobNotFound,
    JobRemoved,
    TagConflict,
    UnknownEndpoint,
)
from jobstore.domain.events import JobEvents
from jobstore.domain.models import Encoding, JobState, Payload, is_valid_tag
from jobstore.endpoints.builtins import SLEEP_REQUEST
from jobstore.endpoints.registry import default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database
from tests.support.avro import avro_write


def json_payload(text: str) -> Payload:
    return Payload(Encoding.JSON, text=text)


@pytest.fixture
def service(db: Database) -> JobService:
    return JobService(db, default_registry())


@pytest.fixture
def executor(db: Database) -> Executor:
    return Executor(db, default_registry(), ExecutorConfig(node_id="test"))


async def test_create_answers_after_commit_with_a_generated_tag(
    db: Database, service: JobService
) -> None:
    result = await service.create_job("/echo", json_payload("{}"))
    assert result.created and is_valid_tag(result.job_tag) and len(result.job_tag) == 32
    # A new connection sees it: the row was committed before create_job returned.
    job = await service.get_job(job_id=result.job_id)
    assert job.status is JobState.QUEUED and job.options["job_tag"] == result.job_tag


@pytest.mark.parametrize(
    ("endpoint", "payload", "options", "error", "words"),
    [
        ("/nope", json_payload("{}"), {}, UnknownEndpoint, "unknown endpoint '/nope'"),
        ("/echo", json_payload("{}"), {"job_tag": "has space"}, BadRequest, "invalid job_tag"),
        ("/echo", json_payload("{}"), {"job_tag": "x" * 129}, BadRequest, "invalid job_tag"),
        (
            "/echo",
            json_payload("{}"),
            {"remove_job_on_complete": "maybe"},
            BadRequest,
            "remove_job_on_complete",
        ),
        ("/sleep", json_payload("{nope"), {}, DecodeError, "not valid JSON"),
        ("/sleep", json_payload('{"seconds": "x"}'), {}, DecodeError, "sleep_request"),
        ("/sleep", Payload(Encoding.BINARY, data=b"\x01\x02"), {}, DecodeError, "Avro"),
        ("/sleep", Payload(Encoding.SNAPPY, data=b"\xff\xff\xff"), {}, DecodeError, "snappy"),
        ("/echo", Payload(Encoding.BINARY), {}, DecodeError, "needs 'data'"),
        ("/echo", Payload(Encoding.JSON), {}, DecodeError, "needs 'data_str'"),
    ],
)
async def test_create_refuses_bad_input(
    db: Database,
    service: JobService,
    endpoint: str,
    payload: Payload,
    options: dict[str, str],
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(")):
        await service.create_job(endpoint, payload, options)
    assert await service.list_jobs(states=None) == []  # nothing stored


async def test_create_accepts_each_encoding(service: JobService) -> None:
    data = avro_write(SLEEP_REQUEST, {"seconds": 0.5})
    for payload in (
        json_payload('{"seconds": 1}'),
        Payload(Encoding.BINARY, data=data),
        Payload(Encoding.SNAPPY, data=snappy.compress(data)),
    ):
        assert (await service.create_job("/sleep", payload)).created


async def test_same_tag_same_request_returns_the_same_job(service: JobService) -> None:
    first = await service.create_job("/echo", json_payload("{}"), {"job_tag": "t-1"})
    again = await service.create_job("/echo", json_payload("{}"), {"job_tag": "t-1"})
    assert again.job_id == first.job_id and not again.created
    with pytest.raises(TagConflict, match="'t-1' is already used by job"):
        await service.create_job("/echo", json_payload("[]"), {"job_tag": "t-1"})
    with pytest.raises(TagConflict):
        await service.create_job("/fail", json_payload("{}"), {"job_tag": "t-1"})


async def test_concurrent_creates_with_one_tag_make_one_job(service: JobService) -> None:
    results = await asyncio.gather(
        *(service.create_job("/echo", json_payload("{}"), {"job_tag": "race"}) for _ in range(10))
    )
    assert len({r.job_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert len(await service.list_jobs(states=None)) == 1


async def test_removed_job_answers_with_its_final_state(
    service: JobService, executor: Executor
) -> None:
    options = {"job_tag": "bye", "remove_job_on_complete": "true"}
    created = await service.create_job("/echo", json_payload("{}"), options)
    assert await executor.run_once() == [created.job_id]
    for lookup in ({"job_id": created.job_id}, {"tag": "bye"}):
        with pytest.raises(JobRemoved, match=r"finished \(DONE\).*remove_job_on_complete"):
            await service.get_job(**lookup)  # type: ignore[arg-type]
    # A client re-sending the same create (failover) gets the same job, not a new one.
    again = await service.create_job("/echo", json_payload("{}"), options)
    assert again.job_id == created.job_id and not again.created
    with pytest.raises(TagConflict):
        await service.create_job("/echo", json_payload("[1]"), options)
    assert await service.list_jobs(states=None) == []


async def test_get_prefers_the_tag_and_reports_not_found(service: JobService) -> None:
    a = await service.create_job("/echo", json_payload("{}"), {"job_tag": "a"})
    b = await service.create_job("/echo", json_payload("{}"), {"job_tag": "b"})
    assert (await service.get_job(job_id=a.job_id, tag="b")).job_id == b.job_id
    with pytest.raises(JobNotFound, match="job_tag 'zzz'"):
        await service.get_job(job_id=a.job_id, tag="zzz")
    with pytest.raises(JobNotFound, match="job_id 12345"):
        await service.get_job(job_id=12345)


async def test_hooks_fire_after_create_and_cancel(db: Database, executor: Executor) -> None:
    created: list[bool] = []
    cancelled: list[list[int]] = []
    events = JobEvents()
    events.on_created(lambda _endpoint, _limited: created.append(True))
    events.on_cancel_requested(lambda ids: cancelled.append(list(ids)))
    service = JobService(db, default_registry(), events=events)
    running = await service.create_job("/sleep", json_payload('{"seconds": 30}'))
    await service.create_job("/echo", json_payload("{}"), {"job_tag": "x"})
    await service.create_job("/echo", json_payload("{}"), {"job_tag": "x"})  # a repeat
    assert created == [True, True]  # a repeated create wakes nobody
    await executor.claim_once()
    queued = await service.create_job("/sleep", json_payload('{"seconds": 30}'))
    result = await service.cancel_jobs([queued.job_id, running.job_id])
    assert result == {queued.job_id: "cancelled", running.job_id: "cancel_requested"}
    assert cancelled == [[running.job_id]]  # only running jobs need the executor's help
    await executor.stop(wait_seconds=0)
