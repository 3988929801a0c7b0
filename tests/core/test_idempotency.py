"""Tag idempotency: the same JSON written another way is the same job, and a conflict says
which of endpoint, request_encoding or payload differs."""

from __future__ import annotations

import asyncio

import pytest

from jobstore.core.jobs import (
    JobService,
    canonical_json,
    legacy_request_digest,
    request_digest,
)
from jobstore.domain.errors import TagConflict
from jobstore.domain.models import Encoding, NewJob, Payload
from jobstore.endpoints.registry import default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database


def json_payload(text: str) -> Payload:
    return Payload(Encoding.JSON, text=text)


@pytest.fixture
def service(db: Database) -> JobService:
    return JobService(db, default_registry())


# -- the digest ------------------------------------------------------------------------------


def test_canonical_json_is_one_spelling() -> None:
    assert canonical_json('{"seconds": 5}') == '{"seconds":5}'
    assert canonical_json('{ "b" : [1, 2],\n "a": {"y": 1, "x": "é"} }') == (
        '{"a":{"x":"é","y":1},"b":[1,2]}'
    )
    assert canonical_json('"\\u00e9"') == '"é"'  # escapes and characters are one spelling
    assert canonical_json("{nope") == "{nope"  # not JSON: left as it is


def test_request_digest_of_json_counts_meaning_not_spelling() -> None:
    compact = request_digest("/sleep", json_payload('{"seconds":5}'))
    assert request_digest("/sleep", json_payload('{"seconds": 5}')) == compact
    assert request_digest("/sleep", json_payload('{\n  "seconds" : 5\n}')) == compact
    assert request_digest("/sleep", json_payload('{"seconds": 6}')) != compact
    assert request_digest("/sleep", json_payload('{"seconds": 5.0}')) != compact  # 5.0 is not 5
    assert request_digest("/echo", json_payload('{"seconds":5}')) != compact
    # Binary payloads are their bytes, as before.
    binary = Payload(Encoding.BINARY, data=b"\x00\x01")
    assert request_digest("/echo", binary) == legacy_request_digest("/echo", binary)
    # The digest of a JSON payload already in canonical form is what it always was.
    assert compact == legacy_request_digest("/sleep", json_payload('{"seconds":5}'))


# -- creates with one tag --------------------------------------------------------------------


async def test_the_same_json_spelled_differently_is_the_same_job(service: JobService) -> None:
    first = await service.create_job("/sleep", json_payload('{"seconds":5}'), {"job_tag": "s-1"})
    again = await service.create_job("/sleep", json_payload('{"seconds": 5}'), {"job_tag": "s-1"})
    assert first.created and not again.created and again.job_id == first.job_id
    echo = '{"a": 1, "b": {"c": [1, 2]}}'
    one = await service.create_job("/echo", json_payload(echo), {"job_tag": "e-1"})
    reordered = '{"b":{"c":[1,2]},"a":1}'
    two = await service.create_job("/echo", json_payload(reordered), {"job_tag": "e-1"})
    assert not two.created and two.job_id == one.job_id
    # The job keeps the text it was first sent with.
    job = await service.get_job(job_id=one.job_id)
    assert job.request_text == echo


async def test_concurrent_creates_spelled_differently_make_one_job(service: JobService) -> None:
    texts = ['{"seconds":1}', '{"seconds": 1}', '{ "seconds":1 }', '{"seconds":\n1}']
    results = await asyncio.gather(
        *(service.create_job("/sleep", json_payload(t), {"job_tag": "many"}) for t in texts)
    )
    assert len({r.job_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


@pytest.mark.parametrize(
    ("endpoint", "payload", "differs"),
    [
        ("/echo", json_payload('{"n": 2}'), "payload"),
        ("/fail", json_payload('{"n": 1}'), "endpoint (/echo, not /fail)"),
        ("/echo", Payload(Encoding.BINARY, data=b"x"), "request_encoding (json, not binary)"),
        (
            "/fail",
            Payload(Encoding.BINARY, data=b"\x02x"),  # fail_request {"message": "x"}
            "endpoint (/echo, not /fail) and request_encoding (json, not binary)",
        ),
    ],
)
async def test_a_tag_conflict_says_what_differs(
    service: JobService, endpoint: str, payload: Payload, differs: str
) -> None:
    first = await service.create_job("/echo", json_payload('{"n": 1}'), {"job_tag": "t-1"})
    with pytest.raises(TagConflict) as caught:
        await service.create_job(endpoint, payload, {"job_tag": "t-1"})
    assert str(caught.value) == (
        f"job_tag 't-1' is already used by job {first.job_id} with a different {differs}"
    )
    assert caught.value.differs == differs and caught.value.job_id == first.job_id


async def test_a_conflict_within_one_batch_says_what_differs(service: JobService) -> None:
    first, second = await asyncio.gather(
        service.create_job("/echo", json_payload('{"n": 1}'), {"job_tag": "b-1"}),
        service.create_job("/echo", json_payload('{"n": 2}'), {"job_tag": "b-1"}),
        return_exceptions=True,
    )
    outcomes = [first, second]
    conflicts = [o for o in outcomes if isinstance(o, TagConflict)]
    assert len(conflicts) == 1 and conflicts[0].differs == "payload", outcomes


async def test_a_conflict_with_a_removed_job_says_what_it_can(
    db: Database, service: JobService
) -> None:
    options = {"job_tag": "gone", "remove_job_on_complete": "true"}
    first = await service.create_job("/echo", json_payload('{"n": 1}'), options)
    executor = Executor(db, default_registry(), ExecutorConfig(node_id="test"))
    assert await executor.run_once() == [first.job_id]
    await executor.stop()
    # A removed job keeps its endpoint and digest, not its encoding.
    again = await service.create_job("/echo", json_payload('{ "n" : 1 }'), {"job_tag": "gone"})
    assert not again.created and again.job_id == first.job_id
    with pytest.raises(TagConflict, match=r"different endpoint \(/echo, not /fail\)$"):
        await service.create_job("/fail", json_payload('{"n": 1}'), {"job_tag": "gone"})
    with pytest.raises(TagConflict, match=r"different request_encoding or payload$"):
        await service.create_job("/echo", json_payload('{"n": 2}'), {"job_tag": "gone"})


async def test_a_job_stored_with_the_old_digest_still_answers_an_exact_repeat(
    db: Database, service: JobService
) -> None:
    """Rows written before canonical JSON hold the digest of their exact text."""
    text = '{"seconds": 5}'
    old = json_payload(text)
    new = service.prepare_job("/sleep", old, {"job_tag": "old-1"})
    assert new.request_digest != legacy_request_digest("/sleep", old)
    legacy = NewJob(
        **{
            **{f: getattr(new, f) for f in NewJob.__dataclass_fields__},
            "request_digest": legacy_request_digest("/sleep", old),
        }
    )
    async with db.transaction() as conn:
        [inserted] = await db.jobs.job_create_many(conn, [legacy], service.clock.now())
    again = await service.create_job("/sleep", json_payload(text), {"job_tag": "old-1"})
    assert not again.created and again.job_id == inserted.job_id
    # Another spelling does not match an old row: its digest is of the exact text.
    with pytest.raises(TagConflict, match="with a different payload"):
        await service.create_job("/sleep", json_payload('{"seconds":5}'), {"job_tag": "old-1"})


async def test_another_users_tag_still_says_nothing_of_the_job(service: JobService) -> None:
    await service.create_job("/echo", json_payload("{}"), {"job_tag": "mine"}, created_by="ann")
    with pytest.raises(TagConflict) as caught:
        await service.create_job("/echo", json_payload("{}"), {"job_tag": "mine"}, created_by="bob")
    assert str(caught.value) == "job_tag 'mine' is already in use; choose another tag"
    assert caught.value.job_id is None and caught.value.differs is None
