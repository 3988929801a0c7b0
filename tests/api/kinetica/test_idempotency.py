"""Kinetica job tags: the same create twice is one job; remove_job_on_complete."""

from __future__ import annotations

import asyncio

import pytest
import snappy

from tests.support.kinetica import (
    Api,
    Env,
    assert_running,
)

# -- idempotency -----------------------------------------------------------------------------


async def test_same_tag_same_request_returns_same_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    first = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"})
    second = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"})
    assert second == first  # same job_id, same info
    # a retry in another wire encoding is still the same request
    other_wire = "json" if wire != "json" else "binary"
    third = await api.using(other_wire).create(
        "/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"}
    )
    assert third == first
    assert await env.job_rows() == [(first["job_id"], "idem", "queued")]
    # once it has run, the identical create still answers the same job
    await env.executor.run_once()
    assert await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "idem"}) == first
    assert await env.executor.run_once() == []


async def test_concurrent_identical_creates_make_one_job(env: Env, wire: str) -> None:
    """The client re-sends a create on 502/503/timeouts; retries may overlap."""
    api = env.api.using(wire)
    record = Api.create_record("/echo", "json", '{"n": 1}', {"job_tag": "race"})
    replies = await asyncio.gather(*(api.call("/create/job", record) for _ in range(8)))
    assert all(r.ok for r in replies), [r.message for r in replies]
    ids = {r.record["job_id"] for r in replies if r.record is not None}
    assert len(ids) == 1
    assert await env.job_rows() == [(ids.pop(), "race", "queued")]


async def test_concurrent_conflicting_creates_one_wins(env: Env) -> None:
    records = [
        Api.create_record("/echo", "json", f'{{"n": {i}}}', {"job_tag": "race2"}) for i in range(6)
    ]
    replies = await asyncio.gather(*(env.api.call("/create/job", r) for r in records))
    winners = [i for i, r in enumerate(replies) if r.ok]
    assert len(winners) == 1, [r.message for r in replies]
    winner = replies[winners[0]].record
    assert winner is not None
    for r in replies:
        if not r.ok:
            assert r.http_status == 400
            assert "'race2'" in r.message and str(winner["job_id"]) in r.message
    await env.executor.run_once()
    got = await env.api.get(winner["job_id"])
    assert got["job_response_str"] == f'{{"n": {winners[0]}}}'


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(("/echo", "binary", b"\x00\x80\xfe"), id="payload"),
        # Avro fail_request {"message": "\x80"}: the same tag, another endpoint
        pytest.param(("/fail", "binary", b"\x04\xc2\x80"), id="endpoint"),
        pytest.param(("/echo", "snappy", snappy.compress(b"\x00\x80\xff")), id="encoding"),
        pytest.param(("/echo", "json", '"\\u0000\\u0080\\u00ff"'), id="family"),
    ],
)
async def test_same_tag_different_request_is_refused(
    env: Env, wire: str, changed: tuple[str, str, bytes | str]
) -> None:
    api = env.api.using(wire)
    first = await api.create("/echo", "binary", b"\x00\x80\xff", {"job_tag": "dup"})
    msg = await api.create_error(*changed, {"job_tag": "dup"})
    assert "'dup'" in msg
    assert str(first["job_id"]) in msg
    assert await env.job_rows() == [(first["job_id"], "dup", "queued")]


async def test_remove_on_complete_removes_job_and_leaves_tombstone(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    options = {"job_tag": "gone", "remove_job_on_complete": "true"}
    created = await api.create("/echo", "json", '{"k": 1}', options)
    job_id = created["job_id"]
    assert_running(await api.get(job_id), "/echo", "json", "gone")
    await env.executor.run_once()

    for msg in (await api.get_error(job_id), await api.get_error(0, "gone")):
        assert f"Job {job_id}" in msg
        assert "'gone'" in msg
        assert "finished (DONE)" in msg
        assert "removed because remove_job_on_complete was set" in msg
    # tag wins over a wrong id here too
    assert "finished (DONE)" in await api.get_error(job_id + 1000, "gone")

    assert await env.sql("SELECT job_id FROM jobs WHERE job_tag = 'gone'") == []
    assert await env.sql("SELECT job_id, job_tag, endpoint, status FROM job_tombstones") == [
        (job_id, "gone", "/echo", "done")
    ]

    # the client's retry of the same create answers the same job, and nothing runs again
    again = await api.create("/echo", "json", '{"k": 1}', options)
    assert again == created
    assert await env.job_rows() == []
    assert await env.executor.run_once() == []
    # a different request with that tag is refused, naming the tag
    msg = await api.create_error("/echo", "json", '{"k": 2}', options)
    assert "'gone'" in msg
    assert await env.job_rows() == []

    # listing (even finished jobs) does not show it, and cancelling it says already done
    shown = await api.show(show_async_jobs="true")
    assert shown["job_id"] == []
    altered = await api.alter([job_id])
    assert altered["status"] == ["already_done"]


async def test_remove_on_complete_after_error_and_cancel(env: Env) -> None:
    api = env.api
    failed = await api.create(
        "/fail", "json", '{"message": "x"}', {"job_tag": "f1", "remove_job_on_complete": "TRUE"}
    )
    await env.executor.run_once()
    assert "finished (ERROR)" in await api.get_error(failed["job_id"])
    cancelled = await api.create(
        "/echo", "json", '"x"', {"job_tag": "c1", "remove_job_on_complete": "true"}
    )
    assert (await api.alter([cancelled["job_id"]]))["status"] == ["cancelled"]
    assert "finished (CANCELLED)" in await api.get_error(0, "c1")
    assert await env.job_rows() == []
    stones = await env.sql("SELECT job_id, job_tag, status FROM job_tombstones ORDER BY job_id")
    assert stones == [(failed["job_id"], "f1", "error"), (cancelled["job_id"], "c1", "cancelled")]


async def test_remove_on_complete_false_keeps_job(env: Env) -> None:
    created = await env.api.create(
        "/echo", "json", '"k"', {"job_tag": "kept", "remove_job_on_complete": "false"}
    )
    await env.executor.run_once()
    assert (await env.api.get(created["job_id"]))["job_status"] == "DONE"
    assert await env.sql("SELECT job_id FROM job_tombstones") == []


async def test_get_by_tag_wins_over_job_id(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    a = await api.create("/echo", "json", '"a"', {"job_tag": "tag-a"})
    b = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "tag-b"})
    got = await api.get(b["job_id"], "tag-a")
    assert got["endpoint"] == "/echo"
    assert got["info"]["job_tag"] == "tag-a"
    got = await api.get(0, "tag-b")
    assert got["endpoint"] == "/sleep"
    got = await api.get(-5, "tag-a")
    assert got["info"]["job_tag"] == "tag-a"
    # an empty job_tag option means "by id"
    got = await api.ok("/get/job", {"job_id": a["job_id"], "options": {"job_tag": ""}})
    assert got["info"]["job_tag"] == "tag-a"
