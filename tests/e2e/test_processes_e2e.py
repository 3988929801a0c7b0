"""`--processes N`: one node as several processes (cli/processes.py), end to end.

Real `jobstore serve --processes 2` and `jobstore worker --processes 2` on SQLite and on
PostgreSQL: both processes take connections on the one port and run jobs under their own node
ids, /metrics of either adds both up, a process killed with -9 is started again, SIGTERM stops
them all cleanly, and a supervisor killed with -9 takes its processes with it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import MakeServer, Server, query, run_cli, server_factory, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    with server_factory(database_url, tmp_path) as make:
        yield make


class Worker(Server):
    """`jobstore worker`: the Server's command line without `serve` and `--port N`; ready once
    every process has logged its start line."""

    processes = 2

    @property
    def argv(self) -> list[str]:
        argv = super().argv
        at = argv.index("--port")
        return [*argv[:3], "worker", *argv[4:at], *argv[at + 2 :]]

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return super()._ready()  # raises, with the logs
        return len(started_nodes(self)) == self.processes


def started_nodes(server: Server) -> list[str]:
    """Node ids of the processes that have logged that they serve (one per start)."""
    return re.findall(r"node ([^ ,]+), database", server.logs())


def process_pids(server: Server) -> dict[int, int]:
    """The newest pid of each process index, from the supervisor's log."""
    found = re.findall(r"process (\d+) \(node [^)]+\) started, pid (\d+)", server.logs())
    return {int(index): int(pid) for index, pid in found}


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left for init to reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def create_from_new_connections(server: Server, count: int) -> None:
    """`count` jobs, each sent on a connection of its own, so the kernel spreads them over the
    processes sharing the port."""
    for n in range(count):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answer = client.post("/api/v1/jobs", json={"endpoint": "/echo", "payload": {"n": n}})
            assert answer.status_code == 201, answer.text


def metric_total(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))


def attempt_nodes(database_url: str) -> set[str]:
    return {row["node"] for row in query(database_url, "SELECT DISTINCT node FROM job_attempts")}


def done_count(database_url: str) -> int:
    rows = query(database_url, "SELECT count(*) AS n FROM jobs WHERE status = 'done'")
    return int(rows[0]["n"])


def test_two_processes_share_the_port_restart_and_stop_together(
    database_url: str, servers: MakeServer
) -> None:
    server = servers(node_id="multi", extra_args=["--processes", "2"], log_level="info").start()
    wait_for("both processes to serve", lambda: len(started_nodes(server)) == 2, logs=server.logs)
    assert sorted(started_nodes(server)) == ["multi/1", "multi/2"]

    create_from_new_connections(server, 40)
    wait_for("40 jobs done", lambda: done_count(database_url) == 40, logs=server.logs)
    assert attempt_nodes(database_url) == {"multi/1", "multi/2"}

    # Whichever process answers /metrics, it counts the jobs of both.
    for _ in range(6):
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert metric_total(text, "jobstore_jobs_created_total") == 40
        assert metric_total(text, "jobstore_jobs_finished_total") == 40

    # kill -9 of one process: the supervisor starts it again under the same node id.
    first = process_pids(server)
    os.kill(first[1], signal.SIGKILL)
    wait_for("process 1 to serve again", lambda: len(started_nodes(server)) == 3, logs=server.logs)
    assert "process 1 (node multi/1) exited with status 137; starting it again" in server.logs()
    create_from_new_connections(server, 10)
    wait_for("50 jobs done", lambda: done_count(database_url) == 50, logs=server.logs)
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert metric_total(text, "jobstore_jobs_created_total") == 50  # the dead process's too

    # SIGTERM: every process stops softly, the supervisor exits 0.
    pids = process_pids(server)
    assert server.terminate() == 0
    assert not any(alive(pid) for pid in pids.values())

    # kill -9 of the supervisor: its processes are told to stop and go with it.
    server.start()
    wait_for("both processes to serve", lambda: len(started_nodes(server)) == 5, logs=server.logs)
    pids = process_pids(server)
    server.kill()
    wait_for(
        "the processes to end with their supervisor",
        lambda: not any(alive(pid) for pid in pids.values()),
        logs=server.logs,
    )


def test_worker_processes_run_jobs_under_their_own_node_ids(
    database_url: str, servers: MakeServer
) -> None:
    # The serving node runs one job at a time; the two worker processes take most of the rest.
    server = servers(node_id="api", extra_args=["--concurrency", "1"]).start()
    worker = servers(
        Worker, node_id="w", extra_args=["--processes", "2", "--concurrency", "4"], log_level="info"
    ).start()
    job_ids = [server.create_job("/sleep", {"seconds": 0.3}) for _ in range(40)]
    for job_id in job_ids:
        assert server.wait_job(job_id, timeout=30)["job_status"] == "DONE"
    assert {"w/1", "w/2"} <= attempt_nodes(database_url)
    assert worker.terminate() == 0


def test_a_taken_port_or_a_bad_setting_is_one_clear_error(tmp_path: Path) -> None:
    """Checked by the supervisor before any process starts: one message, the usual status."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            ["serve", "--processes", "2", "--port", str(port), "--database-url", url], tmp_path
        )
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("cannot listen on 127.0.0.1") == 1, done.stderr

    done = run_cli(
        ["worker", "--processes", "2", "--endpoints", "no.such.module", "--database-url", url],
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("no.such.module") == 1, done.stderr

    done = run_cli(["serve", "--processes", "0", "--database-url", url], tmp_path)
    assert done.returncode == 2
    assert "processes must be 1-64, got 0" in done.stderr
