"""The metrics of calls to upstream services, read from a node's GET /metrics after real calls
to a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from jobstore.cli.node import Node
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.store import Database
from tests.support.upstream import Reply, UpstreamServer, free_port, upstream_node

CALLS = "jobstore_upstream_calls"
DURATION = "jobstore_upstream_call_duration_seconds"


def endpoints(**urls: str) -> str:
    """An endpoints file: one sync endpoint /<name> per URL, run once (no retries)."""
    return "".join(
        f'[endpoints."/{name}"]\nurl = "{url}"\nmax_attempts = 1\n' for name, url in urls.items()
    )


async def scrape(node: Node) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics: every sample, by name and labels."""
    app = node.app(run_background=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://node.test"
    ) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def calls(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    """jobstore_upstream_calls_total as {"<endpoint> <status_class>": count}."""
    return {
        f"{dict(labels)['endpoint']} {dict(labels)['status_class']}": value
        for (name, labels), value in samples.items()
        if name == f"{CALLS}_total"
    }


def durations(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], suffix: str
) -> dict[str, float]:
    """One series of the duration histogram (`_count`, `_sum`) by endpoint."""
    return {
        dict(labels)["endpoint"]: value
        for (name, labels), value in samples.items()
        if name == f"{DURATION}{suffix}"
    }


async def run_jobs(node: Node, *names: str) -> list[int]:
    ids = []
    for name in names:
        payload = Payload(Encoding.JSON, text=json.dumps({"n": name}))
        ids.append((await node.jobs.create_job(name, payload)).job_id)
    assert sorted(await asyncio.wait_for(node.executor.run_once(), 10)) == sorted(ids)
    return ids


async def test_a_200_a_503_and_an_unreachable_upstream_are_counted_and_timed(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/fine", Reply(200, {"ok": True}, delay=0.2))
    server.script("/busy", Reply(503, "busy"))
    toml = endpoints(
        ok=server.url("/fine"),
        busy=server.url("/busy"),
        gone=f"http://127.0.0.1:{free_port()}/nobody",
    )
    async with upstream_node(db, toml, tmp_path, metrics=True) as node:
        before = await scrape(node)
        ids = await run_jobs(node, "/ok", "/busy", "/gone")
        states = [(await node.jobs.get_job(job_id=i)).status for i in ids]
        assert states == [JobState.DONE, JobState.ERROR, JobState.ERROR]
        after = await scrape(node)
        ids = await run_jobs(node, "/ok")
        again = await scrape(node)
    assert calls(before) == {}
    assert calls(after) == {"/ok 2xx": 1, "/busy 5xx": 1, "/gone unreachable": 1}
    assert durations(after, "_count") == {"/ok": 1, "/busy": 1, "/gone": 1}
    took = durations(after, "_sum")
    assert 0.2 <= took["/ok"] < 5  # the upstream's answer took 0.2 s
    assert 0 <= took["/busy"] < 5 and 0 <= took["/gone"] < 5
    assert calls(again) == {"/ok 2xx": 2, "/busy 5xx": 1, "/gone unreachable": 1}
    assert durations(again, "_count") == {"/ok": 2, "/busy": 1, "/gone": 1}
    infinite = frozenset({("endpoint", "/ok"), ("le", "+Inf")})
    assert again[(f"{DURATION}_bucket", infinite)] == 2


async def test_an_answer_over_the_size_cap_and_a_cancelled_call_have_classes_of_their_own(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/big", Reply(200, b"x" * 5000, headers={"Content-Type": "text/plain"}))
    server.script("/slow", Reply(200, {"late": True}, delay=3))
    toml = endpoints(big=server.url("/big"), slow=server.url("/slow"))
    toml = toml.replace("max_attempts = 1\n", "max_attempts = 1\nmax_response_bytes = 1000\n", 1)
    async with upstream_node(db, toml, tmp_path, metrics=True) as node:
        await run_jobs(node, "/big")
        payload = Payload(Encoding.JSON, text="{}")
        slow = (await node.jobs.create_job("/slow", payload)).job_id
        run = asyncio.create_task(node.executor.run_once())
        await asyncio.to_thread(server.wait_for_calls, "/slow", 1)
        await node.jobs.cancel_jobs([slow])
        assert await asyncio.wait_for(run, 2.5) == [slow]
        samples = await scrape(node)
    assert calls(samples) == {"/big too_large": 1, "/slow cancelled": 1}
    assert durations(samples, "_count") == {"/big": 1, "/slow": 1}


async def test_a_call_its_job_timeout_stopped_counts_as_a_timeout(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/hung", Reply(200, {"late": True}, delay=3))
    toml = endpoints(hung=server.url("/hung")) + "timeout_seconds = 0.3\n"
    async with upstream_node(db, toml, tmp_path, metrics=True) as node:
        await run_jobs(node, "/hung")
        samples = await scrape(node)
    assert calls(samples) == {"/hung timeout": 1}


async def test_a_job_completed_through_the_api_counts_as_finished_once(
    db: Database, tmp_path: Path, server: UpstreamServer
) -> None:
    server.script("/accept", Reply(202))
    toml = f'[endpoints."/cb"]\nurl = "{server.url("/accept")}"\nmode = "callback"\n'
    async with upstream_node(db, toml, tmp_path, metrics=True) as node:
        job_id = (await node.jobs.create_job("/cb", Payload(Encoding.JSON, text="{}"))).job_id
        run = asyncio.create_task(node.executor.run_once())
        [call] = await asyncio.to_thread(server.wait_for_calls, "/accept", 1)
        token = call.headers["x-jobstore-job-token"]
        app = node.app(run_background=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node.test"
        ) as client:
            answer = await client.post(
                f"/api/v1/jobs/{job_id}/complete",
                json={"result": 1},
                headers={"X-Jobstore-Job-Token": token},
            )
        assert answer.status_code == 200, answer.text
        assert await asyncio.wait_for(run, 5) == [job_id]
        samples = await scrape(node)
    assert calls(samples) == {"/cb 2xx": 1}
    done = frozenset({("endpoint", "/cb"), ("status", "done")})
    assert samples[("jobstore_jobs_finished_total", done)] == 1
    assert samples[("jobstore_job_duration_seconds_count", done)] == 1
    attempts = frozenset({("endpoint", "/cb"), ("outcome", "done")})
    assert samples[("jobstore_job_attempts_total", attempts)] == 1
