"""Nodes whose machine clocks are wrong, for real: two `jobstore serve` processes under
libfaketime (Debian's `faketime`), one 30 s ahead and one 60 s behind, on one PostgreSQL.

Leases are short (4 s: renewed every 1.3 s, rescues looked for every 2 s) and jobs last 8 s, so
a node judging leases by its own clock would rescue the other's live jobs within seconds (the one
ahead), or write leases already expired for everyone else (the one behind). Neither may happen:
every job runs once, on the node that claimed it. A delayed job starts neither early nor late.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.e2e import Server, clean_env, query, server_factory, wait_for
from tests.support.load import starts_per_job
from tests.support.topologies import faketime_env

pytestmark = [
    pytest.mark.topologies,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(180),
]

AHEAD, BEHIND = 30.0, -60.0
LEASE_SECONDS = 4.0
JOB_SECONDS = 8.0  # two leases: each job's lease must be renewed to survive


@pytest.fixture
def dialect() -> str:
    return "postgres"


@pytest.fixture
def skewed_nodes(
    database_url: str, tmp_path: Path, faketime_available: None
) -> Iterator[tuple[Server, Server]]:
    with server_factory(database_url, tmp_path) as make:
        nodes = tuple(
            make(
                node_id=name,
                lease_seconds=LEASE_SECONDS,
                extra_args=["--concurrency", "3"],
                env=faketime_env(offset, clean_env()),
            )
            for name, offset in (("ahead", AHEAD), ("behind", BEHIND))
        )
        yield nodes  # type: ignore[misc]


def record_job(server: Server, record: Path, seconds: float) -> int:
    return server.create_job("/record", {"path": str(record), "seconds": seconds})


def test_skewed_nodes_neither_steal_live_jobs_nor_lose_their_own(
    database_url: str, skewed_nodes: tuple[Server, Server], tmp_path: Path
) -> None:
    ahead, behind = skewed_nodes
    record = tmp_path / "record.txt"
    # The node behind claims first (its leases would be expired for anyone on a true clock),
    # then the node ahead starts beside it (it would see every lease as long expired).
    behind.start()
    own = [record_job(behind, record, JOB_SECONDS) for _ in range(3)]
    wait_for("the node behind to run its jobs", lambda: len(starts_per_job(record)) == 3)
    ahead.start()
    other = [record_job(ahead, record, JOB_SECONDS) for _ in range(3)]
    ids = own + other
    for job_id in ids:
        ahead.wait_job(job_id, timeout=30)

    starts = starts_per_job(record)
    assert starts == {i: 1 for i in ids}, starts
    rows = query(database_url, "SELECT job_id, owner, attempt, status FROM jobs ORDER BY job_id")
    assert {r["job_id"]: (r["owner"], r["attempt"], r["status"]) for r in rows} == {
        **{i: ("behind", 1, "done") for i in own},
        **{i: ("ahead", 1, "done") for i in other},
    }
    attempts = query(database_url, "SELECT job_id, outcome FROM job_attempts ORDER BY job_id")
    assert [(r["job_id"], r["outcome"]) for r in attempts] == [(i, "done") for i in ids]
    assert "30.0 s ahead of the database's" in ahead.logs()
    assert "60.0 s behind the database's" in behind.logs()
    for node in skewed_nodes:
        assert "rescued" not in node.logs() and "lost" not in node.logs(), node.logs()


def test_a_delayed_job_starts_on_time_on_skewed_nodes(
    database_url: str, skewed_nodes: tuple[Server, Server], tmp_path: Path
) -> None:
    for node in skewed_nodes:
        node.start()
    ahead, behind = skewed_nodes
    created = ahead.post(
        "/api/v1/jobs", {"endpoint": "/echo", "payload": {"n": 1}, "delay_seconds": 3}
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    behind.wait_job(job_id, timeout=20)
    [row] = query(database_url, "SELECT created_at, started_at FROM jobs WHERE job_id = $1", job_id)
    waited = row["started_at"] - row["created_at"]
    # Not early (the node ahead would start it at once), and within a second of due.
    assert timedelta(seconds=3) <= waited < timedelta(seconds=4), waited
    print(f"\nclock skew figures: delayed 3 s, started after {waited.total_seconds():.3f} s")
