"""HTTP endpoints in `callback` mode against a real HTTP server, on SQLite and PostgreSQL: the
upstream accepts the call (202), carrying a token, and later reports progress and completes the
job through the REST API with that token; only the token of the attempt holding the job counts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from jobstore.cli.node import Node
from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, JobState
from jobstore.store import Database
from tests.support.upstream import Call, Reply, UpstreamServer, create, job, upstream_node
from tests.support.upstream import entry as any_entry

TOKEN = "X-Jobstore-Job-Token"


def entry(server_url: str, **keys: Any) -> str:
    """An endpoints file with the one callback endpoint /thumbs calling `server_url`."""
    return any_entry(server_url, **{"mode": "callback", **keys})


async def outcomes(node: Node, job_id: int) -> list[str | None]:
    return [a.outcome.value if a.outcome else None for a in await node.jobs.attempts(job_id)]


@asynccontextmanager
async def rest(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the node's REST API, in-process."""
    app = node.app(run_background=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://node.test"
    ) as client:
        yield client


async def post(
    client: httpx.AsyncClient, job_id: int, what: str, body: Any, token: str | None
) -> httpx.Response:
    """POST /api/v1/jobs/{id}/complete or /progress, presenting `token` (None: no header)."""
    headers = {} if token is None else {TOKEN: token}
    return await client.post(f"/api/v1/jobs/{job_id}/{what}", json=body, headers=headers)


def problem(answer: httpx.Response) -> str:
    """The slug of a problem answer."""
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    slug: str = answer.json()["type"].rsplit("/", 1)[-1]
    return slug


async def start(
    node: Node, server: UpstreamServer, job_id: int, calls: int = 1
) -> tuple[asyncio.Task[list[int]], str]:
    """Claim and run the job in a task until its attempt waits for the callback; the task and
    the token the upstream's `calls`-th call carried."""
    run = asyncio.create_task(node.executor.run_once())
    found = await asyncio.to_thread(server.wait_for_calls, "/make", calls)
    await waiting(node, job_id, run)
    return run, found[calls - 1].headers[TOKEN.lower()]


async def waiting(node: Node, job_id: int, run: asyncio.Task[list[int]]) -> None:
    """Until the job's attempt on this node waits for its callback (the upstream said 202)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        if job_id in node.executor.awaiting_callback_ids:
            return
        assert not run.done(), f"the attempt ended instead of waiting: {run.result()}"
        assert loop.time() < deadline, "the attempt never waited for its callback"
        await asyncio.sleep(0.01)


async def test_the_call_carries_a_token_progress_moves_and_a_result_ends_the_job_done(
    db: Database, tmp_path: Path, server: UpstreamServer, clock: ManualClock
) -> None:
    seen: list[Call] = []

    def accept(call: Call) -> Reply:
        seen.append(call)
        return Reply(202, {"accepted": True})

    server.script("/make", Reply(handler=accept))
    toml = entry(server.url("/make"))
    public = "https://jobs.example:8443/"
    async with upstream_node(db, toml, tmp_path, clock=clock, public_url=public) as node:
        job_id = await create(node, {"image": 7}, job_tag="thumb-7")
        run, token = await start(node, server, job_id)
        async with db.reading() as conn:
            hashes = (
                await conn.execute(
                    sa.text("SELECT callback_token_hash FROM job_attempts WHERE job_id = :j"),
                    {"j": job_id},
                )
            ).all()
        assert hashes == [(hashlib.sha256(token.encode()).hexdigest(),)]
        async with rest(node) as client:
            moved = await post(client, job_id, "progress", {"progress": 40}, token)
            assert moved.status_code == 200 and moved.json() == {"id": job_id, "progress": 40}
            during = await job(node, job_id)
            assert during.status is JobState.RUNNING and during.progress == 40
            answer = await post(client, job_id, "complete", {"result": {"thumb": "t.png"}}, token)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"id": job_id, "status": "done"}
            completed = await job(node, job_id)
            clock.advance(5)  # anything the run wrote from now on would show a later time
            assert await asyncio.wait_for(run, 5) == [job_id]
            again = await post(client, job_id, "complete", {"result": "twice"}, token)
            assert again.status_code == 409 and problem(again) == "token-stale"
        ended = await job(node, job_id)
        assert await outcomes(node, job_id) == ["done"]
    assert ended == completed
    assert ended.status is JobState.DONE and ended.attempt == 1
    assert json.loads(ended.response_text or "") == {"thumb": "t.png"}
    [call] = seen
    assert call.json() == {"image": 7}
    assert call.headers["idempotency-key"] == f"jobstore-{job_id}-thumb-7"
    assert (
        call.headers["x-jobstore-callback-url"] == f"https://jobs.example:8443/api/v1/jobs/{job_id}"
    )
    async with db.reading() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM job_attempts"))).all()
        rows += (await conn.execute(sa.text("SELECT * FROM jobs"))).all()
    assert token not in " ".join(map(str, rows))  # only its hash is kept


async def test_an_error_completion_runs_again_with_a_new_token_and_the_old_one_is_stale(
    db: Database, tmp_path: Path, server: UpstreamServer, clock: ManualClock
) -> None:
    server.script("/make", Reply(202))
    toml = entry(server.url("/make"), retry_errors=True, max_attempts=3, backoff_seconds=10)
    async with upstream_node(db, toml, tmp_path, clock=clock) as node:
        job_id = await create(node)
        run, first = await start(node, server, job_id)
        async with rest(node) as client:
            failed = await post(client, job_id, "complete", {"error": "GPU fell over"}, first)
            assert failed.status_code == 200 and failed.json()["status"] == "scheduled"
            assert await asyncio.wait_for(run, 5) == [job_id]
            waits = await job(node, job_id)
            assert waits.status is JobState.SCHEDULED and waits.run_at is not None
            assert waits.status_map["last_error"] == "GPU fell over"
            assert 8 <= (waits.run_at - clock.now()).total_seconds() <= 12
            assert await outcomes(node, job_id) == ["error"]

            clock.advance((waits.run_at - clock.now()).total_seconds())
            await node.executor.scheduler.run_once()
            run, second = await start(node, server, job_id, calls=2)
            assert second != first
            stale = await post(client, job_id, "complete", {"result": "old"}, first)
            assert stale.status_code == 409 and problem(stale) == "token-stale"
            stale = await post(client, job_id, "progress", {"progress": 10}, first)
            assert stale.status_code == 409 and problem(stale) == "token-stale"
            assert (await job(node, job_id)).status is JobState.RUNNING
            done = await post(client, job_id, "complete", {"result": {"ok": 2}}, second)
            assert done.status_code == 200 and done.json()["status"] == "done"
            assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(node, job_id)
        assert await outcomes(node, job_id) == ["error", "done"]
    assert ended.status is JobState.DONE and ended.attempt == 2
    assert json.loads(ended.response_text or "") == {"ok": 2}
    calls = server.calls("/make")
    assert [c.headers["x-jobstore-attempt"] for c in calls] == ["1", "2"]
    assert calls[0].headers["idempotency-key"] == calls[1].headers["idempotency-key"]


async def test_an_error_completion_with_retry_false_ends_the_job_at_once(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    toml = entry(server.url("/make"), retry_errors=True, max_attempts=3)
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        run, token = await start(node, server, job_id)
        body = {"error": "not a picture", "retry": False, "status_map": {"stage": "decode"}}
        async with rest(node) as client:
            answer = await post(client, job_id, "complete", body, token)
        assert answer.status_code == 200 and answer.json()["status"] == "error"
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(node, job_id)
        assert await outcomes(node, job_id) == ["error"]
    assert ended.status is JobState.ERROR and ended.attempt == 1
    assert ended.status_map["error_message"] == "not a picture"
    assert ended.status_map["stage"] == "decode"


async def test_wrong_missing_or_malformed_calls_are_refused_and_change_nothing(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    async with upstream_node(db, entry(server.url("/make")), tmp_path) as node:
        job_id = await create(node)
        run, token = await start(node, server, job_id)
        before = await job(node, job_id)
        async with rest(node) as client:
            made_up = await post(client, job_id, "complete", {"result": 1}, "not-the-token")
            assert made_up.status_code == 403 and problem(made_up) == "token-refused"
            made_up = await post(client, job_id, "progress", {"progress": 5}, "not-the-token")
            assert made_up.status_code == 403 and problem(made_up) == "token-refused"
            missing = await post(client, job_id, "complete", {"result": 1}, None)
            assert missing.status_code == 403 and problem(missing) == "token-refused"
            assert TOKEN in missing.json()["detail"]
            for body in (
                {"result": 1, "error": "both"},
                {},
                {"result": 1, "surprise": True},
                {"error": "x", "retry": "no"},
                {"result_base64": "@@not base64@@"},
                {"result": 1, "status_map": {"n": 1}},
                [1, 2],
            ):
                bad = await post(client, job_id, "complete", body, token)
                assert bad.status_code == 400 and problem(bad) == "invalid-request", body
            for body in ({"progress": 101}, {"progress": True}, {}):
                bad = await post(client, job_id, "progress", body, token)
                assert bad.status_code == 400 and problem(bad) == "invalid-request", body
            after = await job(node, job_id)
            assert after == before and after.status is JobState.RUNNING
            assert await outcomes(node, job_id) == [None]
            assert not run.done()  # still waiting: the token still counts
            done = await post(client, job_id, "complete", {"result": "fine"}, token)
            assert done.status_code == 200
        assert await asyncio.wait_for(run, 5) == [job_id]
        assert (await job(node, job_id)).status is JobState.DONE


async def test_a_waiting_attempt_times_out_and_its_token_is_then_stale(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    server.script("/cancel", Reply(200))
    # The timeout counts from the attempt's start, the call to /make included: long enough
    # for that call and for the test to see the attempt wait on a loaded machine (with 0.3 s
    # the attempt once timed out in `make test` before /make had its call).
    toml = entry(
        server.url("/make"), timeout_seconds=1.5, max_attempts=1, cancel_url=server.url("/cancel")
    )
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        run, token = await start(node, server, job_id)
        assert await asyncio.wait_for(run, 5) == [job_id]  # ends by itself, at its timeout
        ended = await job(node, job_id)
        assert ended.status is JobState.ERROR
        assert ended.status_map["error_message"] == "timed out after 1.5 s"
        assert await outcomes(node, job_id) == ["timeout"]
        async with rest(node) as client:
            late = await post(client, job_id, "complete", {"result": "late"}, token)
        assert late.status_code == 409 and problem(late) == "token-stale"
        assert await job(node, job_id) == ended
    assert server.calls("/cancel") == []  # a timeout is no cancel request


async def test_a_cancel_while_waiting_calls_the_cancel_url_and_ends_the_job_cancelled(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    server.script("/cancel", Reply(200))
    toml = entry(server.url("/make"), cancel_url=server.url("/cancel"))
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node, job_tag="thumb-9")
        run, token = await start(node, server, job_id)
        await node.jobs.cancel_jobs([job_id])
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(node, job_id)
        assert await outcomes(node, job_id) == ["cancelled"]
        async with rest(node) as client:
            late = await post(client, job_id, "complete", {"result": "late"}, token)
        assert late.status_code == 409 and problem(late) == "token-stale"
    assert ended.status is JobState.CANCELLED
    [call] = server.calls("/make")
    [cancel] = server.calls("/cancel")
    assert cancel.method == "POST"
    assert cancel.headers["idempotency-key"] == call.headers["idempotency-key"]
    assert cancel.headers["idempotency-key"] == f"jobstore-{job_id}-thumb-9"
    assert cancel.headers[TOKEN.lower()] == token
    assert cancel.headers["x-jobstore-job-id"] == str(job_id)


async def test_with_auth_required_the_token_alone_completes_the_job(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    async with upstream_node(db, entry(server.url("/make")), tmp_path, auth="required") as node:
        job_id = await create(node)
        run, token = await start(node, server, job_id)
        async with rest(node) as client:
            signed_out = await client.get(f"/api/v1/jobs/{job_id}")
            assert signed_out.status_code == 401  # the node does require sign-in
            moved = await post(client, job_id, "progress", {"progress": 70}, token)
            assert moved.status_code == 200, moved.text
            answer = await post(client, job_id, "complete", {"result": [1, 2]}, token)
            assert answer.status_code == 200, answer.text
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(node, job_id)
    assert ended.status is JobState.DONE and json.loads(ended.response_text or "") == [1, 2]


async def test_a_base64_result_is_stored_as_bytes(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    png = bytes(range(256)) * 3
    server.script("/make", Reply(202))
    async with upstream_node(db, entry(server.url("/make")), tmp_path) as node:
        job_id = await create(node)
        run, token = await start(node, server, job_id)
        body = {"result_base64": base64.b64encode(png).decode(), "status_map": {"w": "64"}}
        async with rest(node) as client:
            answer = await post(client, job_id, "complete", body, token)
        assert answer.status_code == 200 and answer.json()["status"] == "done"
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(node, job_id)
    assert ended.status is JobState.DONE
    assert ended.response_encoding is Encoding.BINARY and ended.response_data == png
    assert ended.status_map["w"] == "64"


async def test_an_upstream_refusing_the_call_ends_the_attempt_without_waiting(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(200, {"too": "eager"}), Reply(202))
    toml = entry(server.url("/make"), max_attempts=1)
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        assert await asyncio.wait_for(node.executor.run_once(), 5) == [job_id]
        ended = await job(node, job_id)
    # 200 is not 202: the upstream did not take the job to complete it later.
    assert ended.status is JobState.ERROR
    assert "answered 200" in ended.status_map["error_message"]


async def test_an_upstream_completing_before_it_answers_202_ends_the_job_done(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    loop = asyncio.get_running_loop()
    answers: list[httpx.Response] = []
    answered = asyncio.Event()
    server.script("/cancel", Reply(200))
    toml = entry(server.url("/make"), cancel_url=server.url("/cancel"))
    async with upstream_node(db, toml, tmp_path) as node:

        async def complete(call: Call) -> None:
            job_id, token = int(call.headers["x-jobstore-job-id"]), call.headers[TOKEN.lower()]
            async with rest(node) as client:
                answers.append(await post(client, job_id, "complete", {"result": "quick"}, token))
            answered.set()

        def complete_then_accept(call: Call) -> Reply:
            # A fast upstream: done with the work before its 202 leaves.
            asyncio.run_coroutine_threadsafe(complete(call), loop).result(5)
            return Reply(202)

        server.script("/make", Reply(handler=complete_then_accept))
        job_id = await create(node)
        assert await asyncio.wait_for(node.executor.run_once(), 5) == [job_id]
        # The run ends when the completion commits, which may be before its answer is read.
        await asyncio.wait_for(answered.wait(), 5)
        ended = await job(node, job_id)
        assert await outcomes(node, job_id) == ["done"]
    [answer] = answers
    assert answer.status_code == 200 and answer.json()["status"] == "done"
    assert ended.status is JobState.DONE and ended.attempt == 1
    assert json.loads(ended.response_text or "") == "quick"
    assert server.calls("/cancel") == []  # the job was not cancelled: nothing to tell


async def test_a_cancel_before_the_upstream_accepted_still_calls_the_cancel_url(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202, delay=3))
    server.script("/cancel", Reply(200))
    toml = entry(server.url("/make"), cancel_url=server.url("/cancel"))
    async with upstream_node(db, toml, tmp_path) as node:
        job_id = await create(node)
        run = asyncio.create_task(node.executor.run_once())
        [call] = await asyncio.to_thread(server.wait_for_calls, "/make", 1)
        began = loop_time()
        await node.jobs.cancel_jobs([job_id])
        assert await asyncio.wait_for(run, 2.5) == [job_id]  # before the upstream answers
        assert loop_time() - began < 2.5
        ended = await job(node, job_id)
    assert ended.status is JobState.CANCELLED
    [cancel] = server.calls("/cancel")
    assert cancel.headers["idempotency-key"] == call.headers["idempotency-key"]
    assert cancel.headers[TOKEN.lower()] == call.headers[TOKEN.lower()]


def loop_time() -> float:
    return asyncio.get_running_loop().time()


async def test_a_completion_on_another_node_ends_the_waiting_run_at_its_next_heartbeat(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    toml = entry(server.url("/make"))
    async with (
        upstream_node(db, toml, tmp_path, node_id="runner") as runner,
        upstream_node(db, toml, tmp_path, node_id="other") as other,
    ):
        job_id = await create(runner)
        run, token = await start(runner, server, job_id)
        async with rest(other) as client:
            answer = await post(client, job_id, "complete", {"result": "elsewhere"}, token)
        assert answer.status_code == 200 and answer.json()["status"] == "done"
        completed = await job(other, job_id)
        assert not run.done()  # the runner has not heard of it yet
        assert await runner.executor.heartbeat_once() == [job_id]
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(runner, job_id)
        assert await outcomes(runner, job_id) == ["done"]
    assert ended == completed and ended.status is JobState.DONE
    assert json.loads(ended.response_text or "") == "elsewhere"


async def test_a_cancel_made_on_another_node_reaches_the_cancel_url(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/make", Reply(202))
    server.script("/cancel", Reply(204))
    toml = entry(server.url("/make"), cancel_url=server.url("/cancel"))
    async with (
        upstream_node(db, toml, tmp_path, node_id="runner") as runner,
        upstream_node(db, toml, tmp_path, node_id="other") as other,
    ):
        job_id = await create(runner)
        run, token = await start(runner, server, job_id)
        await other.jobs.cancel_jobs([job_id])
        assert not run.done()
        assert (await runner.executor.tick_once()).cancels_seen == [job_id]
        assert await asyncio.wait_for(run, 5) == [job_id]
        ended = await job(runner, job_id)
    assert ended.status is JobState.CANCELLED
    [cancel] = server.calls("/cancel")
    assert cancel.headers[TOKEN.lower()] == token
