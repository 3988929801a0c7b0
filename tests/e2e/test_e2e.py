"""End to end: real `jobstore serve` processes, killed and restarted, over HTTP and SQL.

Every test starts the real CLI in a child process (see tests/support/e2e.py), talks to it with the
Kinetica JSON API, and checks the jobs table directly. Processes are always reaped in the
`servers` fixture's teardown, which also prints their logs (shown when a test fails).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstore.store.migrate import head_revision
from tests.support.e2e import (
    MakeServer,
    job_row,
    job_rows,
    query,
    run_cli,
    server_factory,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

ONLY_POSTGRES = pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    """A factory of (not yet started) servers on the test database; all killed at teardown.

    It depends on `database_url`, so the servers die before their database is dropped.
    """
    with server_factory(database_url, tmp_path) as make:
        yield make


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _response(row_or_job: dict[str, Any]) -> Any:
    text = row_or_job.get("job_response_str", row_or_job.get("response_text"))
    assert text, f"no response in {row_or_job}"
    return json.loads(text)


# -- 1. kill -9 mid-job, restart with the same node id ------------------------------------------


def test_kill_9_mid_job_then_same_node_restart_finishes_it(
    database_url: str, servers: MakeServer
) -> None:
    # A long lease: if the restarted node did not take back its own jobs at once (it must, see
    # Executor.start), the job would sit `running` for 30 s and this test would time out.
    server = servers(node_id="node-k", lease_seconds=30).start()
    job_id = server.create_job("/sleep", {"seconds": 3}, tag="t1")

    def mid_run() -> dict[str, Any] | None:
        row = job_row(database_url, job_id)
        return row if row["status"] == "running" and row["progress"] > 0 else None

    wait_for("the job to make progress", mid_run, timeout=10, logs=server.logs)
    server.kill()

    row = job_row(database_url, job_id)
    assert (row["status"], row["owner"], row["attempt"]) == ("running", "node-k", 1)
    assert row["progress"] < 100

    restarted = time.monotonic()
    server.start()
    job = server.wait_job(job_id, timeout=12)
    took = time.monotonic() - restarted
    print(f"restarted node finished its killed job {took:.2f}s after the restart")

    assert job["job_status"] == "DONE", job
    assert job["progress"] == 100
    assert _response(job) == {"slept": 3.0}
    assert server.get_job(tag="t1")["info"]["job_id"] == str(job_id)

    rows = job_rows(database_url)
    assert [r["job_id"] for r in rows] == [job_id], "exactly one row for the job"
    assert rows[0]["job_tag"] == "t1"
    # A finished row keeps the owner that finished it.
    assert (rows[0]["status"], rows[0]["attempt"], rows[0]["owner"]) == ("done", 2, "node-k")
    assert rows[0]["progress"] == 100
    assert took < 3 + 8, "the restarted node should requeue its own job at once"


# -- 2. two nodes on one PostgreSQL: a killed node's jobs finish on the other ------------------


@ONLY_POSTGRES
def test_killed_node_jobs_finish_on_other_node(database_url: str, servers: MakeServer) -> None:
    node_a = servers(node_id="node-a", extra_args=["--concurrency", "3"]).start()
    node_b = servers(node_id="node-b", extra_args=["--concurrency", "3"]).start()
    created = [node_a.create_job("/sleep", {"seconds": 1.5}) for _ in range(10)]

    def owners() -> dict[str, list[int]]:
        rows = query(
            database_url, "SELECT job_id, owner FROM jobs WHERE status = 'running' ORDER BY job_id"
        )
        found: dict[str, list[int]] = {}
        for r in rows:
            found.setdefault(r["owner"], []).append(r["job_id"])
        return found

    # Kill A once both nodes run at full concurrency: A is then not in the middle of a claim
    # (whose COMMIT could still land after the kill), so the rows it holds at the kill are
    # exactly the jobs it lost. Jobs take 1.5 s; both nodes fill up long before one ends.
    wait_for(
        "both nodes to run 3 jobs each",
        lambda: (o := owners()) and len(o.get("node-a", [])) == 3 and len(o.get("node-b", [])) == 3,
        timeout=10,
        logs=lambda: node_a.logs() + node_b.logs(),
    )
    killed_at = time.monotonic()
    node_a.kill()

    lost = owners().get("node-a", [])
    assert len(lost) == 3, f"node A should have died holding 3 jobs, held {lost}"

    requeued_after: float | None = None
    done_after: float | None = None
    deadline = killed_at + 20
    while time.monotonic() < deadline:
        rows = {r["job_id"]: r for r in job_rows(database_url)}
        now = time.monotonic() - killed_at
        if requeued_after is None and all(rows[i]["owner"] != "node-a" for i in lost):
            requeued_after = now
        if all(rows[i]["status"] == "done" for i in lost):
            done_after = now
            break
        time.sleep(0.05)

    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f}s"

    print(
        f"\nnode A killed holding jobs {lost}: requeued {secs(requeued_after)} after the kill, "
        f"all DONE on node B {secs(done_after)} after the kill (lease 2 s, jobs of 1.5 s)"
    )
    assert done_after is not None, f"A's jobs were not finished by B within 20 s: {rows}"

    def all_done() -> list[dict[str, Any]] | None:
        rows = job_rows(database_url)
        return rows if all(r["status"] == "done" for r in rows) else None

    rows = wait_for("every job to finish", all_done, timeout=20, logs=node_b.logs)
    assert [r["job_id"] for r in rows] == created, "no job lost, none added"
    for r in rows:
        assert r["progress"] == 100
        assert json.loads(r["response_text"]) == {"slept": 1.5}
        assert r["attempt"] == (2 if r["job_id"] in lost else 1), (
            f"A lost {lost}; (job, attempt): {[(x['job_id'], x['attempt']) for x in rows]}"
        )
        if r["job_id"] in lost:
            assert r["owner"] == "node-b", r
    # Node B answers for every job, including those created on (and lost by) node A.
    for job_id in created:
        assert node_b.get_job(job_id)["job_status"] == "DONE"
    # The killed node's runs are in SQL: closed `lost` by node B's rescuer.
    attempts = query(
        database_url,
        "SELECT job_id, attempt, node, outcome, finished_at IS NOT NULL AS closed"
        " FROM job_attempts ORDER BY job_id, attempt",
    )
    runs = {(a["job_id"], a["attempt"]): (a["node"], a["outcome"], a["closed"]) for a in attempts}
    for job_id in created:
        if job_id in lost:
            assert runs.pop((job_id, 1)) == ("node-a", "lost", True)
            assert runs.pop((job_id, 2)) == ("node-b", "done", True)
        else:
            assert runs.pop((job_id, 1))[1:] == ("done", True)
    assert runs == {}, "no other attempt"


# -- 3. no job completed twice --------------------------------------------------------------


def test_no_job_completed_twice_across_kill_and_restart(
    database_url: str, servers: MakeServer, tmp_path: Path
) -> None:
    record = tmp_path / "record.txt"
    server = servers(node_id="node-r").start()
    quick = [server.create_job("/record", {"path": str(record), "seconds": 0.1}) for _ in range(3)]
    slow = [server.create_job("/record", {"path": str(record), "seconds": 2}) for _ in range(3)]

    def ready_to_kill() -> bool:
        rows = {r["job_id"]: r for r in job_rows(database_url)}
        started = {line.split()[1] for line in _lines(record) if line.startswith("start")}
        return all(rows[i]["status"] == "done" for i in quick) and all(
            str(i) in started for i in slow
        )

    wait_for("quick jobs done, slow ones started", ready_to_kill, timeout=10, logs=server.logs)
    server.kill()
    for job_id in slow:
        assert job_row(database_url, job_id)["status"] == "running"

    server.start()
    for job_id in quick + slow:
        assert server.wait_job(job_id, timeout=15)["job_status"] == "DONE"

    rows = job_rows(database_url)
    assert [r["job_id"] for r in rows] == quick + slow
    lines = _lines(record)
    for r in rows:
        job_id = r["job_id"]
        assert r["status"] == "done"
        expected_attempt = 2 if job_id in slow else 1
        assert r["attempt"] == expected_attempt, r
        # The stored answer is the final attempt's.
        assert json.loads(r["response_text"]) == {"job_id": job_id, "attempt": expected_attempt}
        starts = [line for line in lines if line.startswith(f"start {job_id} ")]
        ends = [line for line in lines if line.startswith(f"end {job_id} ")]
        # Finished jobs are not run again after the restart; killed ones ran once more.
        assert starts == [f"start {job_id} {a}" for a in range(1, expected_attempt + 1)], lines
        assert ends == [f"end {job_id} {expected_attempt}"], lines


# -- 4. a non-retryable endpoint killed mid-run ends ERROR, never run twice -----------------


def test_non_retryable_job_killed_mid_run_ends_error(
    database_url: str, servers: MakeServer, tmp_path: Path
) -> None:
    ran = tmp_path / "once.txt"
    server = servers(node_id="node-o").start()
    job_id = server.create_job("/once", {"path": str(ran), "seconds": 10}, tag="once-1")

    wait_for("the handler to start", lambda: _lines(ran), timeout=10, logs=server.logs)
    server.kill()
    assert job_row(database_url, job_id)["status"] == "running"

    server.start()
    job = server.wait_job(job_id, timeout=10)
    assert job["job_status"] == "ERROR", job
    message = job["status_map"].get("error_message", "")
    assert "restarted" in message or "lost" in message, message
    assert "node-o" in message, message

    row = job_row(database_url, job_id)
    assert (row["status"], row["attempt"], row["owner"]) == ("error", 1, "node-o")
    time.sleep(3 * 0.2)  # a few poll periods: nothing may pick it up again
    assert _lines(ran) == [f"run {job_id} 1"], "a non-retryable handler ran more than once"
    assert job_row(database_url, job_id)["status"] == "error"


# -- 5. SIGTERM: the soft stop ------------------------------------------------------------------


def test_sigterm_lets_a_nearly_done_job_finish(database_url: str, servers: MakeServer) -> None:
    server = servers(node_id="node-t", extra_args=["--shutdown-seconds", "5"]).start()
    job_id = server.create_job("/sleep", {"seconds": 2})

    def mid_run() -> dict[str, Any] | None:
        row = job_row(database_url, job_id)
        return row if row["status"] == "running" and row["progress"] > 0 else None

    wait_for("the job to make progress", mid_run, timeout=10, logs=server.logs)
    signalled = time.monotonic()
    code = server.terminate(timeout=15)
    took = time.monotonic() - signalled

    row = job_row(database_url, job_id)
    expected = ("done", 100, 1, "node-t")
    assert (row["status"], row["progress"], row["attempt"], row["owner"]) == expected
    assert json.loads(row["response_text"]) == {"slept": 2.0}
    assert took < 5, f"exit took {took:.1f}s: it should not wait out the shutdown timeout"
    assert code == 0, f"a soft stop should exit 0, got {code}\n{server.logs()}"


def test_sigterm_gives_back_a_long_job_which_runs_after_restart(
    database_url: str, servers: MakeServer
) -> None:
    server = servers(node_id="node-g", extra_args=["--shutdown-seconds", "1"]).start()
    job_id = server.create_job("/slow_first", {"first": 30, "later": 0.2}, tag="slow")
    wait_for(
        "the job to run",
        lambda: job_row(database_url, job_id)["status"] == "running",
        timeout=10,
        logs=server.logs,
    )
    signalled = time.monotonic()
    code = server.terminate(timeout=15)
    took = time.monotonic() - signalled
    assert took < 6, f"exit took {took:.1f}s with --shutdown-seconds 1"

    row = job_row(database_url, job_id)
    assert (row["status"], row["owner"], row["attempt"]) == ("queued", None, 1), row

    server.start(extra_args=[])
    job = server.wait_job(job_id, timeout=10)
    assert job["job_status"] == "DONE", job
    assert _response(job) == {"attempt": 2, "slept": 0.2}
    row = job_row(database_url, job_id)
    assert (row["status"], row["attempt"]) == ("done", 2)
    assert code == 0, f"a soft stop should exit 0, got {code}"


# -- 6. the CLI -------------------------------------------------------------------------------


def test_cli_db_commands_and_config_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    head = head_revision()  # 0001 when this test was written; newer migrations move it

    # `db current` reads an existing database only; `db upgrade` is the command that creates.
    empty = run_cli(["db", "current", "--database-url", url], tmp_path)
    assert empty.returncode == 3, empty.stderr
    assert "run jobstore db upgrade first" in empty.stderr, empty.stderr
    assert not (tmp_path / "cli.db").exists()

    upgraded = run_cli(["db", "upgrade", "--database-url", url], tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip().endswith(f"is at revision {head}"), upgraded.stdout
    assert head >= "0001"

    current = run_cli(["db", "current", "--database-url", url], tmp_path)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == head

    missing = run_cli(
        ["serve", "--database-url", url, "--port", "1", "--endpoints", "no_such_module"],
        tmp_path,
        timeout=30,
    )
    assert missing.returncode == 2, (missing.stdout, missing.stderr)
    assert "cannot import endpoint module 'no_such_module'" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr, missing.stderr

    for port in ("0", "70000"):
        bad = run_cli(["serve", "--database-url", url, "--port", port], tmp_path, timeout=30)
        assert bad.returncode == 2, (port, bad.stdout, bad.stderr)
        assert "port" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr, bad.stderr


# -- 7. custom endpoints ----------------------------------------------------------------------


def test_custom_endpoint_runs_and_unknown_endpoint_is_refused(
    database_url: str, servers: MakeServer
) -> None:
    server = servers(node_id="node-c").start()
    job_id = server.create_job("/e2e/add", {"a": 2, "b": 40}, tag="add-1")
    job = server.wait_job(job_id, timeout=10)
    assert job["job_status"] == "DONE", job
    assert job["endpoint"] == "/e2e/add"
    assert job["progress"] == 100
    assert _response(job) == {"sum": 42, "job_id": job_id}

    response = server.post(
        "/create/job",
        {
            "endpoint": "/no/such/endpoint",
            "request_encoding": "json",
            "data": "",
            "data_str": "{}",
            "options": {},
        },
    )
    assert response.status_code == 400
    envelope = response.json()
    assert envelope["status"] == "ERROR"
    assert "/no/such/endpoint" in envelope["message"]
    # The refusal lists what the service has, custom endpoints included.
    assert "/e2e/add" in envelope["message"] and "/sleep" in envelope["message"]
    assert [r["job_id"] for r in job_rows(database_url)] == [job_id], "no row for a refused job"


# -- 8. a busy node never loses its own jobs ---------------------------------------------------


@ONLY_POSTGRES
def test_busy_node_never_loses_its_own_jobs(database_url: str, servers: MakeServer) -> None:
    """Many short jobs: claims keep landing while the heartbeat renews leases.

    PostgreSQL only: there the heartbeat and the claims run on separate connections at once,
    which is what shows the race reliably (SQLite serializes them on its one writer).

    Nothing dies here, so every job must run once (attempt 1) and no job may be reported
    "taken from this node". A heartbeat that counts a job claimed during its UPDATE as lost
    cancels it, and the job reruns after its lease expires.
    """
    server = servers(node_id="node-busy", extra_args=["--concurrency", "8"]).start()
    created = [server.create_job("/sleep", {"seconds": 0.02}) for _ in range(300)]

    def all_finished() -> list[dict[str, Any]] | None:
        rows = job_rows(database_url)
        return rows if all(r["status"] in ("done", "error", "cancelled") for r in rows) else None

    rows = wait_for("every job to finish", all_finished, timeout=30, logs=server.logs)
    assert [r["job_id"] for r in rows] == created
    assert all(r["status"] == "done" for r in rows), [r for r in rows if r["status"] != "done"]
    rerun = [(r["job_id"], r["attempt"]) for r in rows if r["attempt"] != 1]
    assert not rerun, f"(job, attempt) of jobs run more than once on a healthy node: {rerun}"
    assert "lease lost" not in server.logs(), server.logs()
