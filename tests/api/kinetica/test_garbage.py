"""Garbage never gives a 500: truncated, random, oversized and odd bodies to every path."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator

import pytest
import snappy

from tests.support.avro import avro_write
from tests.support.kinetica import (
    CONTENT_TYPES,
    SCHEMAS,
    Api,
    Env,
    decode_reply,
    encode_request,
)

# -- garbage never gives a 500 ---------------------------------------------------------------


def _valid_create_body(wire: str) -> bytes:
    return encode_request(
        "/create/job",
        Api.create_record("/echo", "binary", b"\x00\x01\x80\xff", {"job_tag": "garbage-t"}),
        wire,
    )


def _random_bodies(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 48)))


async def _assert_refused(api: Api, path: str, body: bytes, fragment: str | None = None) -> str:
    reply = await api.post(path, body)
    assert reply.http_status == 400, (path, body, reply.envelope)
    assert reply.envelope["status"] == "ERROR"
    assert reply.envelope["data_type"] == "none"
    assert "internal error" not in reply.message, (path, body, reply.message)
    if fragment is not None:
        assert fragment in reply.message, (body, reply.message)
    return reply.message


async def test_truncated_bodies(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    good = _valid_create_body(wire)
    for n in range(len(good)):
        await _assert_refused(api, "/create/job", good[:n])
    assert await env.job_rows() == []
    # the whole body works, so the prefixes failed for being short
    reply = await api.post("/create/job", good, rsp="/create/job")
    assert reply.ok


async def test_trailing_bytes_refused(env: Env) -> None:
    for wire in ("binary", "snappy"):
        api = env.api.using(wire)
        body = avro_write(SCHEMAS["/get/job"][0], {"job_id": 1, "options": {}}) + b"\x00"
        if wire == "snappy":
            body = snappy.compress(body)
        await _assert_refused(api, "/get/job", body, "trailing")
    await _assert_refused(env.api, "/get/job", b'{"job_id": 1, "options": {}} x', "not valid JSON")


async def test_random_bodies(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    for seed, path in enumerate(("/create/job", "/get/job", "/admin/alter/jobs")):
        for body in _random_bodies(seed=1234 + seed, count=60):
            if wire == "snappy":
                await _assert_refused(api, path, body)
                # snappy that decompresses fine around garbage Avro
                await _assert_refused(api, path, snappy.compress(body))
            else:
                await _assert_refused(api, path, body)
    assert await env.job_rows() == []


async def test_empty_body(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    for path in SCHEMAS:
        await _assert_refused(api, path, b"")


async def test_oversized_body(small_env: Env, wire: str) -> None:
    api = small_env.api.using(wire)
    record = Api.create_record("/echo", "binary", random.Random(7).randbytes(2000))
    body = encode_request("/create/job", record, wire)
    assert len(body) > 1024
    await _assert_refused(api, "/create/job", body, "larger than 1024 bytes")
    await _assert_refused(api, "/create/job", b"\x00" * 1025, "larger than 1024 bytes")

    # a streamed body (no Content-Length) is cut off too
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"\x00" * 300

    response = await small_env.client.post(
        "/create/job", content=chunks(), headers={"Content-Type": CONTENT_TYPES[wire]}
    )
    assert response.status_code == 400
    reply = decode_reply(response, wire, None)
    assert "larger than 1024 bytes" in reply.message
    assert await small_env.job_rows() == []


async def test_body_of_exactly_the_limit_is_accepted(small_env: Env) -> None:
    record = Api.create_record("/echo", "json", '"x"', {"job_tag": "edge"})
    body = encode_request("/create/job", record, "json")
    body = body[:-1] + b" " * (1024 - len(body)) + b"}"
    assert len(body) == 1024
    reply = await small_env.api.post("/create/job", body, rsp="/create/job")
    assert reply.ok

    binary = small_env.api.using("binary")
    base = len(encode_request("/create/job", Api.create_record("/echo", "binary", b""), "binary"))
    size = 1023 - base  # the data length varint grows from 1 byte to 2
    record = Api.create_record("/echo", "binary", b"\x07" * size)
    body = encode_request("/create/job", record, "binary")
    assert len(body) == 1024
    reply = await binary.post("/create/job", body, rsp="/create/job")
    assert reply.ok


@pytest.mark.parametrize(
    ("endpoint", "data_str", "options"),
    [
        pytest.param("/echo", "a\u0000b", {}, id="echo-nul"),
        pytest.param("/echo", '"\ud800"', {}, id="echo-lone-surrogate"),
        pytest.param("/echo", '["\ud83d"]', {}, id="echo-lone-high-surrogate"),
        pytest.param("/sleep", '{"seconds": 0, "note": "\udfff"}', {}, id="sleep-lone-surrogate"),
        pytest.param("/echo", '"x"', {"note": "a\u0000b"}, id="option-nul"),
        pytest.param("/echo", '"x"', {"note": "\ud800"}, id="option-lone-surrogate"),
    ],
)
async def test_json_text_the_database_cannot_store(
    env: Env, endpoint: str, data_str: str, options: dict[str, str]
) -> None:
    """JSON escapes can carry NUL and lone surrogates (the client's json.dumps sends them as
    \\u0000 / \\ud800). Such a request is either stored and answered intact, or refused with a
    message that names the problem: never a generic internal error."""
    body = json.dumps(
        {
            "endpoint": endpoint,
            "request_encoding": "json",
            "data": "",
            "data_str": data_str,
            "options": options,
        }
    ).encode()
    reply = await env.api.post("/create/job", body, rsp="/create/job")
    if not reply.ok:
        assert "internal error" not in reply.message, (data_str, options, reply.message)
        assert await env.job_rows() == []
        return
    assert reply.record is not None
    await env.executor.run_once()
    got = await env.api.get(reply.record["job_id"])
    assert got["job_status"] == "DONE", got
    if endpoint == "/echo":
        assert got["job_response_str"] == data_str


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("a\u0000b", id="nul"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("x" * 5000, id="very-long"),
        pytest.param("has space", id="space"),
    ],
)
async def test_odd_tags_in_get_and_cancel(env: Env, tag: str) -> None:
    """A tag no job can have is simply not found (or refused as invalid), by name."""
    for path, record in (
        ("/get/job", {"job_id": 0, "options": {"job_tag": tag}}),
        ("/admin/alter/jobs", {"job_ids": [], "action": "cancel", "options": {"job_tag": tag}}),
    ):
        body = json.dumps(record).encode()
        message = await _assert_refused(env.api, path, body)
        assert "not found" in message.lower() or "job_tag" in message, message


async def test_cancel_with_many_ids(env: Env) -> None:
    """A long id list (more than a driver's 32767 bind parameters) is the client's request,
    not an outage: answer per id, or refuse it by name with 400. A 503 would make the client
    re-send it 5 times and fail over (§2.4) while /show/system/status still says running."""
    created = await env.api.create("/echo", "json", '"x"')
    ids = [created["job_id"], *range(10**6, 10**6 + 40_000)]
    reply = await env.api.call(
        "/admin/alter/jobs", {"job_ids": ids, "action": "cancel", "options": {}}
    )
    if reply.ok:
        assert reply.record is not None
        assert reply.record["job_ids"] == ids
        assert reply.record["status"] == ["cancelled"] + ["not_found"] * 40_000
    else:
        assert "internal error" not in reply.message and "unavailable" not in reply.message
        assert (await env.api.get(created["job_id"]))["job_status"] == "RUNNING"


@pytest.mark.parametrize("limit", ["99999999999999999999", "9223372036854775808"])
async def test_show_jobs_with_huge_limit(env: Env, limit: str) -> None:
    created = await env.api.create("/echo", "json", '"x"')
    reply = await env.api.call("/admin/show/jobs", {"options": {"limit": limit}})
    if reply.ok:
        assert reply.record is not None
        assert reply.record["job_id"] == [created["job_id"]]
    else:
        assert "'limit'" in reply.message, reply.message
