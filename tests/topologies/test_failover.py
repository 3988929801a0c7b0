"""A failover under load: the primary is stopped hard (`pg_ctl stop -m immediate`), and its
synchronous standby is promoted 10 s later, as an HA manager would. Two real nodes reach the
servers through a multi-host URL with target_session_attrs=read-write and are never restarted.

No acknowledged create may be lost (synchronous replication), no job may run twice (outcomes are
recorded once the database is back, within their leases), and creates must succeed again within
seconds of the promotion. A read-only server and a standby given by mistake are here too.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import Server, free_port, query, run_cli, server_factory, wait_for
from tests.support.load import Creator, starts_per_job
from tests.support.topologies import PgCluster

pytestmark = [
    pytest.mark.topologies,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

OUTAGE_SECONDS = 10.0  # from the primary's crash to the standby's promotion
RECOVERY_LIMIT_SECONDS = 10.0  # creates succeed again within this long after the promotion
LEASE_SECONDS = 30.0  # longer than the outage, as docs/operations.md asks


def multi_host_url(*clusters: PgCluster, database: str = "jobs") -> str:
    hosts = "&".join(f"host=127.0.0.1:{c.port}" for c in clusters)
    return f"postgresql://postgres@/{database}?{hosts}&target_session_attrs=read-write"


def ready_status(server: Server) -> int:
    return httpx.get(f"{server.url}/readyz", timeout=10).status_code


def test_a_synchronous_standby_promoted_after_10_s_loses_nothing_and_runs_nothing_twice(
    pg_standby_pair: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    primary, standby = pg_standby_pair
    direct = primary.create_database("jobs")
    upgraded = run_cli(["db", "upgrade", "--database-url", direct], tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    url = multi_host_url(primary, standby)
    with server_factory(url, tmp_path) as make:
        servers = [make(node_id=f"ha-{n}", lease_seconds=LEASE_SECONDS).start() for n in "ab"]
        # About 40 creates a second of 0.3 s jobs: some are always running, and end while the
        # database is away; the nodes (2 x 8 slots) keep up.
        creator = Creator(
            servers, tmp_path / "record.txt", threads=4, seconds=0.3, pause=0.1
        ).start()
        time.sleep(3)
        primary.stop("immediate")
        crashed = time.monotonic()
        time.sleep(2)
        during_outage = [ready_status(s) for s in servers]
        time.sleep(OUTAGE_SECONDS - (time.monotonic() - crashed))
        standby.promote()
        promoted = time.monotonic()
        wait_for(
            "a create acknowledged after the promotion",
            lambda: creator.first_success_after(promoted),
            timeout=RECOVERY_LIMIT_SECONDS + 5,
        )
        time.sleep(3)
        creator.stop()

        recovered = creator.first_success_after(promoted)
        assert recovered is not None and recovered - promoted < RECOVERY_LIMIT_SECONDS
        assert during_outage == [503, 503]
        assert [ready_status(s) for s in servers] == [200, 200]  # no node was restarted
        assert all(s.running for s in servers)

        ids = creator.acknowledged
        after = multi_host_url(standby)

        def not_done() -> dict[str, int] | None:
            rows = query(after, "SELECT status, count(*) AS n FROM jobs GROUP BY status")
            states = {r["status"]: r["n"] for r in rows}
            return None if states.get("done", 0) >= len(ids) else states

        wait_for("every acknowledged job to be done", lambda: not not_done(), timeout=60)
        rows = query(after, "SELECT job_id, status, attempt FROM jobs ORDER BY job_id")
        stored = {r["job_id"]: r for r in rows}
        lost = [i for i in ids if i not in stored]
        assert lost == [], f"acknowledged but lost: {lost}"
        starts = starts_per_job(creator.record)
        twice = {i: n for i, n in starts.items() if n > 1}
        assert twice == {}, f"ran more than once: {twice}"
        assert {r["status"] for r in rows} == {"done"}
        attempts = query(after, "SELECT job_id, count(*) AS n FROM job_attempts GROUP BY job_id")
        assert {r["n"] for r in attempts} == {1}
        print(
            f"\nfailover figures: {len(ids)} creates acknowledged, errors {dict(creator.errors)}, "
            f"recovered {recovered - promoted:.2f} s after the promotion "
            f"({recovered - crashed:.2f} s after the crash), lost {len(lost)}, "
            f"run twice {len(twice)}"
        )


def test_a_server_turned_read_only_under_running_nodes(
    pg_primary: PgCluster, tmp_path: Path
) -> None:
    """A primary demoted under running nodes: 503 and /readyz 503, then back without restart."""
    direct = pg_primary.create_database("jobs")
    upgraded = run_cli(["db", "upgrade", "--database-url", direct], tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    with server_factory(direct, tmp_path) as make:
        server = make(node_id="ro").start()
        assert server.create_job("/e2e/add", {"a": 1, "b": 2}) > 0
        pg_primary.set_read_only(True)
        create = server.post("/api/v1/jobs", {"endpoint": "/echo", "payload": {}})
        assert create.status_code == 503 and create.headers["Retry-After"], create.text
        body = {"endpoint": "/echo", "request_encoding": "json", "data_str": "{}"}
        kinetica = server.post("/create/job", body)
        assert kinetica.status_code == 503 and kinetica.json()["status"] == "ERROR"
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and "read-only" in ready.json()["checks"]["writable"]
        pg_primary.set_read_only(False)
        wait_for(
            "creates to succeed again",
            lambda: (
                server.post("/api/v1/jobs", {"endpoint": "/echo", "payload": {}}).status_code == 201
            ),
            timeout=10,
        )
        assert ready_status(server) == 200
        assert "Traceback" not in server.logs()


def test_serve_on_a_standby_says_so_in_one_line_and_reads_work(
    pg_standby_pair: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    primary, standby = pg_standby_pair
    upgraded = run_cli(
        ["db", "upgrade", "--database-url", primary.create_database("jobs")], tmp_path
    )
    assert upgraded.returncode == 0, upgraded.stderr
    url = standby.url("jobs")
    current = run_cli(["db", "current", "--database-url", url], tmp_path)  # reading is fine
    assert current.returncode == 0 and current.stdout.strip(), current.stderr
    done = run_cli(["serve", "--database-url", url, "--port", str(free_port())], tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("jobstore: ")]
    assert done.returncode == 3, done.stderr
    assert len(lines) == 1 and "standby" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def _has_schema(cluster: PgCluster) -> bool:
    found = "SELECT count(*) FROM pg_tables WHERE tablename = 'alembic_version'"
    return bool(cluster.fetchval(found, database="jobs"))
