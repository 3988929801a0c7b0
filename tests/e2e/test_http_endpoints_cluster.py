"""HTTP endpoints on two real nodes: `jobstore serve` processes on one PostgreSQL database, both
with the same endpoints file, whose /thumbs calls a real upstream HTTP server in this process.

A node killed (-9) in the middle of a call loses its job to the other node after the lease; the
other calls the upstream again with the same Idempotency-Key, the next attempt number. The
file's `${env:MEDIA_TOKEN}` header is set only in the nodes' environment: it reaches the
upstream and nowhere else (the logs, the listings, the job).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import MakeServer, Server, clean_env, query, server_factory, wait_for
from tests.support.upstream import Call, Reply, UpstreamServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    pytest.mark.parametrize("dialect", [pytest.param("postgres", marks=pytest.mark.postgres)]),
]

LEASE_SECONDS = 2.0
HELD_SECONDS = 30.0  # the first answer is held this long: past the kill and the rescue


@dataclass
class Cluster:
    nodes: list[Server]
    upstream: UpstreamServer
    secret: str

    def logs(self) -> str:
        return "\n".join(node.logs() for node in self.nodes)


StartCluster = Callable[..., Cluster]  # (log_level="warning") -> two started nodes


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def start_cluster(
    database_url: str, tmp_path: Path, upstream: UpstreamServer
) -> Iterator[StartCluster]:
    """start_cluster(log_level): two started nodes on the test database, both running the
    endpoints file; killed at teardown (their logs printed)."""
    secret = f"tok-{uuid.uuid4().hex}"
    endpoints = tmp_path / "endpoints.toml"
    endpoints.write_text(
        '[endpoints."/thumbs"]\n'
        f'url = "{upstream.url("/make")}"\n'
        "timeout_seconds = 60\n"
        "max_attempts = 3\n"
        "backoff_seconds = 0.1\n"
        'description = "make a thumbnail"\n'
        'headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}", X-Team = "media" }\n'
    )
    assert secret not in endpoints.read_text()
    env = {**clean_env(), "MEDIA_TOKEN": secret}  # the nodes' environment only, not this one

    with server_factory(database_url, tmp_path) as make:

        def start(log_level: str = "warning") -> Cluster:
            nodes = [
                node(make, name, endpoints, env, log_level).start() for name in ("node-a", "node-b")
            ]
            return Cluster(nodes, upstream, secret)

        yield start


def node(make: MakeServer, name: str, endpoints: Path, env: dict[str, str], level: str) -> Server:
    return make(
        node_id=name,
        lease_seconds=LEASE_SECONDS,
        extra_args=["--endpoints-file", str(endpoints)],
        env=env,
        log_level=level,
    )


def create(node: Server, payload: Any, tag: str) -> int:
    response = node.post("/api/v1/jobs", {"endpoint": "/thumbs", "payload": payload, "tag": tag})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def get(node: Server, path: str) -> Any:
    response = node.client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def wait_done(node: Server, job_id: int, cluster: Cluster, timeout: float = 20) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = get(node, f"/api/v1/jobs/{job_id}")
        return job if job["finished"] else None

    return wait_for(f"job {job_id} to finish", finished, timeout=timeout, logs=cluster.logs)


def attempts(node: Server, job_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get(node, f"/api/v1/jobs/{job_id}/attempts")["attempts"]
    return found


def heads(calls: list[Call], *names: str) -> list[tuple[str | None, ...]]:
    return [tuple(call.headers.get(name) for name in names) for call in calls]


def assert_secret_kept(cluster: Cluster, job_ids: list[int]) -> None:
    """The secret is in no node's log, listing, page or job, nor in the database."""
    places: dict[str, str] = {}
    for node in cluster.nodes:
        places[f"log of {node.node_id}"] = node.logs()
        if not node.running:
            continue
        for path in ["/api/v1/endpoints", "/ui/endpoints", "/metrics", "/api/v1/openapi.json"]:
            places[f"{node.node_id} {path}"] = node.client.get(path).text
        for job_id in job_ids:
            for path in [f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/attempts"]:
                places[f"{node.node_id} {path}"] = node.client.get(path).text
            places[f"{node.node_id} /ui/jobs/{job_id}"] = node.client.get(f"/ui/jobs/{job_id}").text
            places[f"{node.node_id} /get/job {job_id}"] = json.dumps(node.get_job(job_id))
    database_url = cluster.nodes[0].database_url
    for table in ("jobs", "job_attempts"):
        rows = query(database_url, f"SELECT row_to_json(t)::text AS doc FROM {table} t")
        assert rows, f"no rows in {table}"
        places[f"table {table}"] = "\n".join(row["doc"] for row in rows)
    leaked = [where for where, text in places.items() if cluster.secret in text]
    assert not leaked, f"the secret header's value shows in {leaked}"
    # The checks looked at what they meant to: the job's own documents were read.
    assert all(str(job_id) in places["table jobs"] for job_id in job_ids)


def test_a_killed_nodes_call_is_made_again_by_the_other_node_with_the_same_key(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster()
    upstream = cluster.upstream
    upstream.script(
        "/make",
        Reply(200, {"thumb": "never-read.png"}, delay=HELD_SECONDS),  # held past the kill
        Reply(200, {"thumb": "t-7.png"}),
    )
    job_id = create(cluster.nodes[0], {"image": 7}, "thumb-7")
    [first] = upstream.wait_for_calls("/make", 1, timeout=15)

    running = get(cluster.nodes[1], f"/api/v1/jobs/{job_id}")
    assert running["status"] == "running" and running["attempt"] == 1, running
    owner = next(n for n in cluster.nodes if n.node_id == running["node"])
    rescuer = next(n for n in cluster.nodes if n is not owner)
    [run] = attempts(rescuer, job_id)
    assert (run["attempt"], run["node"], run["outcome"]) == (1, owner.node_id, None)
    killed_at = time.monotonic()
    owner.kill()

    calls = upstream.wait_for_calls("/make", 2, timeout=20)
    again = time.monotonic() - killed_at
    done = wait_done(rescuer, job_id, cluster)
    print(f"\n{owner.node_id} killed; {rescuer.node_id} called the upstream {again:.2f}s later")
    # Not before the lease ran out: it was last renewed at most a third of a lease before the
    # kill (the heartbeat), so it ended 2/3 of a lease after it at the earliest.
    assert again >= LEASE_SECONDS / 2, "called again while the killed node's lease held"

    assert (done["status"], done["attempt"], done["node"]) == ("done", 2, rescuer.node_id), done
    assert done["response"] == {"encoding": "json", "json": {"thumb": "t-7.png"}}, done
    time.sleep(0.5)  # a third call would come now, if one came
    calls = upstream.calls("/make")
    assert calls[0] == first and len(calls) == 2, [c.headers for c in calls]
    key = f"jobstore-{job_id}-thumb-7"
    names = ("idempotency-key", "x-jobstore-attempt", "x-jobstore-job-id", "x-jobstore-job-tag")
    assert heads(calls, *names) == [
        (key, "1", str(job_id), "thumb-7"),
        (key, "2", str(job_id), "thumb-7"),
    ]
    assert [c.json() for c in calls] == [{"image": 7}, {"image": 7}]
    # Both nodes read the header from their own environment.
    bearer = f"Bearer {cluster.secret}"
    assert heads(calls, "authorization", "x-team") == [(bearer, "media")] * 2

    # The history: the killed run closed `lost` by the rescue, then the rescuer's run, done.
    first_run, second_run = attempts(rescuer, job_id)
    assert (first_run["attempt"], first_run["node"], first_run["outcome"]) == (
        1,
        owner.node_id,
        "lost",
    ), first_run
    assert first_run["finished_at"] is not None
    assert (second_run["attempt"], second_run["node"], second_run["outcome"]) == (
        2,
        rescuer.node_id,
        "done",
    ), second_run
    assert second_run["finished_at"] is not None and second_run["error"] is None
    assert first_run["finished_at"] <= second_run["started_at"]
    assert rescuer.running, "the rescuer died"
    assert_secret_kept(cluster, [job_id])


def test_the_secret_header_reaches_the_upstream_and_nothing_else(
    start_cluster: StartCluster,
) -> None:
    # Debug logs: every line the nodes can write about a call, a failure, a retry.
    cluster = start_cluster(log_level="debug")
    upstream = cluster.upstream
    upstream.script(
        "/make",
        Reply(503, "busy, try again", headers={"Retry-After": "0"}),
        Reply(200, {"thumb": "ok.png"}),
    )
    ids = [create(cluster.nodes[n % 2], {"image": n}, f"img-{n}") for n in range(4)]
    jobs = [wait_done(cluster.nodes[0], job_id, cluster) for job_id in ids]
    assert [job["status"] for job in jobs] == ["done"] * 4, jobs
    calls = upstream.calls("/make")
    assert len(calls) == 5  # the one 503, retried, and 4 answers
    assert {c.headers.get("authorization") for c in calls} == {f"Bearer {cluster.secret}"}
    [retried] = [job for job in jobs if job["attempt"] == 2]
    failed, _ = attempts(cluster.nodes[1], retried["id"])
    assert failed["outcome"] == "error" and "503" in failed["error"], failed

    listing = get(cluster.nodes[1], "/api/v1/endpoints")
    [thumbs] = [item for item in listing["items"] if item["name"] == "/thumbs"]
    assert (thumbs["kind"], thumbs["upstream"], thumbs["description"]) == (
        "http",
        f"127.0.0.1:{upstream.port}",
        "make a thumbnail",
    )
    assert listing["other_names"] is None
    assert "DEBUG" in cluster.logs(), "the nodes did not log at debug level"
    assert_secret_kept(cluster, ids)
