"""HTTP endpoints in `sync` mode against a real HTTP server, on SQLite and PostgreSQL: the
upstream's answer is the job's result; the failure rules decide what runs again."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.store import Database
from tests.support.upstream import (
    Reply,
    UpstreamServer,
    create,
    entry,
    free_port,
    job,
    run_due,
    upstream_node,
)


async def test_a_json_answer_is_the_jobs_result_and_every_call_names_its_job(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(200, {"thumb": "t.png"}, headers={"ETag": '"v1"'}))
    toml = entry(server.url("/make"), status_headers=["ETag"])
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node, {"image": 7}, job_tag="thumb-7")
        assert await node.executor.run_once() == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE
    assert json.loads(done.response_text or "") == {"thumb": "t.png"}
    assert done.status_map["http_status"] == "200"
    assert done.status_map["header.etag"] == '"v1"'
    [call] = server.calls("/make")
    assert call.method == "POST" and call.json() == {"image": 7}
    assert call.headers["content-type"] == "application/json"
    assert call.headers["idempotency-key"] == f"jobstore-{job_id}-thumb-7"
    assert call.headers["x-jobstore-job-id"] == str(job_id)
    assert call.headers["x-jobstore-job-tag"] == "thumb-7"
    assert call.headers["x-jobstore-attempt"] == "1"


async def test_a_binary_request_goes_as_bytes_and_a_binary_answer_is_kept_as_bytes(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    png = bytes(range(256))
    server.script("/make", Reply(200, png, headers={"Content-Type": "image/png"}))
    async with upstream_node(db, entry(server.url("/make")), tmp_path) as node:
        created = await node.jobs.create_job("/thumbs", Payload(Encoding.BINARY, data=b"\x00\xff"))
        assert await node.executor.run_once() == [created.job_id]
        done = await job(node, created.job_id)
    assert done.status is JobState.DONE
    assert done.response_encoding is Encoding.BINARY and done.response_data == png
    assert done.status_map["content_type"] == "image/png"
    [call] = server.calls("/make")
    assert call.body == b"\x00\xff"
    assert call.headers["content-type"] == "application/octet-stream"


async def test_503_503_200_runs_three_times_with_growing_backoff_and_one_idempotency_key(
    db: Database, tmp_path: Path, server: UpstreamServer, clock: ManualClock
) -> None:
    server.script("/make", Reply(503, "busy"), Reply(503, "busy"), Reply(200, {"ok": True}))
    toml = entry(server.url("/make"), backoff_seconds=10, max_attempts=5)
    async with upstream_node(db, toml, tmp_path, clock=clock) as node:
        job_id = await create(node)
        assert await node.executor.run_once() == [job_id]
        gaps = []
        for _ in range(2):
            waiting = await job(node, job_id)
            assert waiting.run_at is not None
            assert waiting.status_map["last_error"].startswith("127.0.0.1:")
            assert "503" in waiting.status_map["last_error"]
            gaps.append((waiting.run_at - clock.now()).total_seconds())
            assert await run_due(node, clock, job_id) == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE and done.attempt == 3
    assert 8 <= gaps[0] <= 12 and 16 <= gaps[1] <= 24
    calls = server.calls("/make")
    assert [c.headers["x-jobstore-attempt"] for c in calls] == ["1", "2", "3"]
    assert len({c.headers["idempotency-key"] for c in calls}) == 1


async def test_429_waits_as_long_as_retry_after_says(
    db: Database, tmp_path: Path, server: UpstreamServer, clock: ManualClock
) -> None:
    server.script("/make", Reply(429, "slow down", headers={"Retry-After": "120"}), Reply(200, {}))
    toml = entry(server.url("/make"), backoff_seconds=1, max_attempts=3)
    async with upstream_node(db, toml, tmp_path, clock=clock) as node:
        job_id = await create(node)
        assert await node.executor.run_once() == [job_id]
        waiting = await job(node, job_id)
        assert waiting.run_at is not None
        assert (waiting.run_at - clock.now()).total_seconds() == pytest.approx(120, abs=0.01)
        assert await run_due(node, clock, job_id) == [job_id]
        assert (await job(node, job_id)).status is JobState.DONE


async def test_400_ends_the_job_at_once_with_the_status_and_an_excerpt_of_the_body(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(400, {"error": "image 7 is not a picture" + "!" * 500}))
    async with upstream_node(db, entry(server.url("/make"), max_attempts=5), tmp_path) as node:
        job_id = await create(node)
        assert await node.executor.run_once() == [job_id]
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    message = ended.status_map["error_message"]
    assert "answered 400 Bad Request" in message and "image 7 is not a picture" in message
    assert len(message) < 300  # an excerpt, not the whole body
    assert ended.status_map["http_status"] == "400"
    assert len(server.calls("/make")) == 1


async def test_a_redirect_is_not_followed_unless_the_entry_allows_it(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/old", Reply(307, headers={"Location": server.url("/new")}))
    server.script("/new", Reply(200, {"moved": True}))
    async with upstream_node(db, entry(server.url("/old")), tmp_path) as node:
        job_id = await create(node)
        await node.executor.run_once()
        ended = await job(node, job_id)
    assert (
        ended.status is JobState.ERROR and "follow_redirects" in ended.status_map["error_message"]
    )
    assert server.calls("/new") == []
    toml = entry(server.url("/old"), follow_redirects=True)
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node, {"second": True})
        await node.executor.run_once()
        assert json.loads((await job(node, job_id)).response_text or "") == {"moved": True}


async def test_an_answer_over_the_size_cap_ends_the_job(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(200, b"x" * 5000, headers={"Content-Type": "text/plain"}))
    toml = entry(server.url("/make"), max_response_bytes=1000, max_attempts=3)
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        await node.executor.run_once()
        ended = await job(node, job_id)
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert "more than 1000 bytes" in ended.status_map["error_message"]


async def test_a_hung_upstream_times_out_and_the_next_attempt_succeeds(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(200, {"late": True}, delay=5), Reply(200, {"ok": True}))
    toml = entry(server.url("/make"), timeout_seconds=0.5, backoff_seconds=0.1, max_attempts=3)
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        assert await node.executor.run_once() == [job_id]
        waiting = await job(node, job_id)
        assert waiting.status is JobState.SCHEDULED
        assert waiting.status_map["last_error"] == "timed out after 0.5 s"
        await asyncio.sleep(0.5)  # the backoff (at most 0.12 s) has passed
        await node.executor.scheduler.run_once()
        assert await node.executor.run_once() == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE and done.attempt == 2
    attempts = await node.jobs.attempts(job_id)
    assert [a.outcome.value for a in attempts if a.outcome] == ["timeout", "done"]


async def test_connection_refused_is_retried_and_the_job_recovers_when_the_upstream_is_up(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    port = free_port()
    toml = entry(f"http://127.0.0.1:{port}/make", backoff_seconds=5, max_attempts=4)
    async with upstream_node(db, toml, tmp_path, clock=clock) as node:
        job_id = await create(node)
        assert await node.executor.run_once() == [job_id]
        waiting = await job(node, job_id)
        assert waiting.status is JobState.SCHEDULED
        assert f"could not reach 127.0.0.1:{port}" in waiting.status_map["last_error"]
        with UpstreamServer(port=port) as server:
            server.script("/make", Reply(200, {"ok": True}))
            assert await run_due(node, clock, job_id) == [job_id]
        done = await job(node, job_id)
    assert done.status is JobState.DONE and done.attempt == 2


async def test_a_cancel_aborts_the_call(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(200, {"late": True}, delay=3))
    async with upstream_node(db, entry(server.url("/make")), tmp_path) as node:
        job_id = await create(node)
        run = asyncio.create_task(node.executor.run_once())
        await asyncio.to_thread(server.wait_for_calls, "/make", 1)
        began = asyncio.get_running_loop().time()
        await node.jobs.cancel_jobs([job_id])
        assert await asyncio.wait_for(run, 2) == [job_id]  # before the upstream answers
        ended = await job(node, job_id)
    assert ended.status is JobState.CANCELLED
    assert asyncio.get_running_loop().time() - began < 2


async def test_secrets_stay_out_of_logs_answers_and_the_database(
    db: Database, tmp_path: Path, server: UpstreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-media-token-41"
    server.script("/make", Reply(500, "no"), Reply(200, {"ok": True}))
    toml = (
        '[endpoints."/thumbs"]\n'
        f'url = "{server.url("/make")}"\n'
        "backoff_seconds = 0.01\n"
        'headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}" }\n'
    )
    caplog.set_level(logging.DEBUG)
    async with upstream_node(db, toml, tmp_path, env={"MEDIA_TOKEN": secret}) as node:
        job_id = await create(node)
        await node.executor.run_once()
        await asyncio.sleep(0.1)
        await node.executor.scheduler.run_once()
        await node.executor.run_once()
        done = await job(node, job_id)
        app = node.app(run_background=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node.test"
        ) as client:
            listing = (await client.get("/api/v1/endpoints")).text
            detail = (await client.get(f"/api/v1/jobs/{job_id}")).text
    assert done.status is JobState.DONE
    assert [c.headers["authorization"] for c in server.calls("/make")] == [f"Bearer {secret}"] * 2
    assert secret not in caplog.text
    assert secret not in listing and secret not in detail
    endpoint = next(e for e in json.loads(listing)["items"] if e["name"] == "/thumbs")
    assert endpoint["kind"] == "http" and endpoint["upstream"] == f"127.0.0.1:{server.port}"
    rows = []
    async with db.reading() as conn:
        for table in ("jobs", "job_attempts"):
            rows += (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()
    assert rows and secret not in " ".join(map(str, rows))


async def test_503_with_retry_after_waits_that_long(
    db: Database, tmp_path: Path, server: UpstreamServer, clock: ManualClock
) -> None:
    server.script("/make", Reply(503, "maintenance", headers={"Retry-After": "300"}), Reply(200))
    toml = entry(server.url("/make"), backoff_seconds=1, max_attempts=3)
    async with upstream_node(db, toml, tmp_path, clock=clock) as node:
        job_id = await create(node)
        await node.executor.run_once()
        waiting = await job(node, job_id)
    assert waiting.run_at is not None
    assert (waiting.run_at - clock.now()).total_seconds() == pytest.approx(300, abs=0.01)


async def test_an_upstream_that_echoes_a_secret_header_does_not_put_it_in_the_error(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    secret = "tok-echoed-9f2"
    server.script("/make", Reply(handler=lambda call: Reply(400, dict(call.headers))))
    toml = (
        '[endpoints."/thumbs"]\n'
        f'url = "{server.url("/make")}"\n'
        'headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}", X-Team = "media-team-7" }\n'
    )
    async with upstream_node(db, toml, tmp_path, env={"MEDIA_TOKEN": secret}) as node:
        job_id = await create(node)
        await node.executor.run_once()
        ended = await job(node, job_id)
        attempts = await node.jobs.attempts(job_id)
    message = ended.status_map["error_message"]
    assert "answered 400" in message and "***" in message
    assert secret not in message and "media-team-7" not in message
    assert all(secret not in (a.error_message or "") for a in attempts)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_is_verified(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    with UpstreamServer(tls=(cert, key)) as server:
        server.script("/make", Reply(200, {"ok": True}))
        toml = entry(server.url("/make"), max_attempts=1)
        async with upstream_node(db, toml, tmp_path) as node:
            refused = await create(node)
            await node.executor.run_once()
        ended = await job(node, refused)
        assert ended.status is JobState.ERROR
        assert "CERTIFICATE_VERIFY_FAILED" in ended.status_map["error_message"]
        assert server.calls() == []  # the request was never sent
        # Trusted through the environment, as a private CA would be: the same call goes through.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with upstream_node(db, toml, tmp_path) as node:
            trusted = await create(node, {"second": True})
            await node.executor.run_once()
            assert (await job(node, trusted)).status is JobState.DONE
