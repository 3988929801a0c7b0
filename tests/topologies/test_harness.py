"""Self-test of tests/support/topologies.py: clusters, a synchronous standby and failover,
PgBouncer, a skewed child clock, a read-only server, and the skip/fail rule for missing tools."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.support import topologies
from tests.support.e2e import wait_for
from tests.support.topologies import PgBouncer, PgCluster, faketime_env

pytestmark = pytest.mark.topologies


def _pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- clusters ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_cluster_starts_and_answers(pg_primary: PgCluster) -> None:
    assert pg_primary.is_running()
    assert pg_primary.port != 5432
    assert pg_primary.fetchval("SELECT 6 * 7") == 42
    assert pg_primary.fetchval("SHOW port") == str(pg_primary.port)
    assert pg_primary.fetchval("SHOW wal_level") == "replica"
    assert pg_primary.fetchval("SELECT current_user") == "postgres"
    assert not pg_primary.is_in_recovery()
    # The server runs as postgres, from a folder of its own.
    assert pg_primary.data_dir.owner() == "postgres"
    assert pg_primary.fetchval("SHOW data_directory") == str(pg_primary.data_dir)

    url = pg_primary.create_database("jobs")
    assert url == f"postgresql://postgres@127.0.0.1:{pg_primary.port}/jobs"
    assert pg_primary.fetchval("SELECT current_database()", database="jobs") == "jobs"


@pytest.mark.postgres
def test_cleanup_leaves_no_process_and_no_files(
    pg_cluster_factory: Callable[..., PgCluster],
) -> None:
    cluster = pg_cluster_factory(name="doomed")
    pid = cluster.postmaster_pid()
    assert pid is not None
    assert _pid_alive(pid)

    cluster.cleanup()

    assert not _pid_alive(pid)
    assert not cluster.root.exists()
    assert not cluster.is_running()
    cluster.cleanup()  # a second call is harmless


@pytest.mark.postgres
def test_sync_helpers_refuse_a_running_loop(pg_primary: PgCluster) -> None:
    async def inside() -> None:
        pg_primary.fetchval("SELECT 1")

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(inside())


# -- standby and failover -----------------------------------------------------------------------


@pytest.mark.postgres
def test_synchronous_standby_receives_commits(
    pg_standby_pair: tuple[PgCluster, PgCluster],
) -> None:
    primary, standby = pg_standby_pair
    assert primary.replication_state("standby") == ("streaming", "sync")
    assert primary.fetchval("SHOW synchronous_standby_names") == "standby"
    assert standby.is_in_recovery()
    assert standby.port != primary.port
    # The standby copied the primary's data dir but none of its ALTER SYSTEM settings.
    assert standby.fetchval("SHOW synchronous_standby_names") == ""
    conninfo = standby.fetchval("SHOW primary_conninfo")
    assert "application_name=standby" in conninfo
    assert f"port={primary.port}" in conninfo

    primary.execute("CREATE TABLE marks (id int PRIMARY KEY, note text)")
    primary.execute("INSERT INTO marks VALUES (1, 'before failover')")

    # A synchronous commit has been flushed on the standby before it returns; applying it
    # there follows within moments.
    wait_for(
        "the row on the standby",
        lambda: standby.fetch("SELECT note FROM marks WHERE id = 1"),
        timeout=10,
    )
    assert standby.fetchval("SELECT note FROM marks WHERE id = 1") == "before failover"
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        standby.execute("INSERT INTO marks VALUES (2, 'on a standby')")


@pytest.mark.postgres
def test_promoted_standby_keeps_committed_rows_and_takes_writes(
    pg_standby_pair: tuple[PgCluster, PgCluster],
) -> None:
    primary, standby = pg_standby_pair
    primary.execute("CREATE TABLE marks (id int PRIMARY KEY, note text)")
    primary.execute("INSERT INTO marks VALUES (1, 'committed on the primary')")

    primary.stop("immediate")
    assert not primary.is_running()
    with pytest.raises(OSError):
        primary.fetchval("SELECT 1")

    standby.promote()

    assert not standby.is_in_recovery()
    assert standby.execute("INSERT INTO marks VALUES (2, 'after failover')") == "INSERT 0 1"
    rows = standby.fetch("SELECT id, note FROM marks ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, "committed on the primary"),
        (2, "after failover"),
    ]


# -- PgBouncer ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_pgbouncer_forwards_queries_in_transaction_mode(
    pg_primary: PgCluster, pgbouncer_factory: Callable[..., PgBouncer]
) -> None:
    bouncer = pgbouncer_factory(pg_primary, pool_mode="transaction", default_pool_size=2)

    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", bouncer.version), bouncer.version
    assert bouncer.version_info >= (1, 0)
    assert bouncer.is_running()
    assert bouncer.port not in (pg_primary.port, 5432)
    assert "pool_mode = transaction" in bouncer.ini_path.read_text()
    # The answer comes from the cluster behind it.
    assert bouncer.fetchval("SELECT current_setting('port')::int") == pg_primary.port
    assert bouncer.fetchval("SELECT inet_server_port()") == pg_primary.port
    # The connection PgBouncer made is visible on the server.
    clients = pg_primary.fetch(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND client_port IS NOT NULL AND pid <> pg_backend_pid()"
    )
    assert clients[0]["n"] >= 1

    bouncer.stop()
    assert not bouncer.is_running()
    with pytest.raises(OSError):
        bouncer.fetchval("SELECT 1")


@pytest.mark.postgres
def test_pgbouncer_follows_a_failover(
    pg_standby_pair: tuple[PgCluster, PgCluster],
    pgbouncer_factory: Callable[..., PgBouncer],
) -> None:
    primary, standby = pg_standby_pair
    bouncer = pgbouncer_factory(primary)
    assert bouncer.fetchval("SELECT inet_server_port()") == primary.port

    primary.stop("immediate")
    standby.promote()
    bouncer.retarget(standby)

    wait_for(
        "PgBouncer to reach the promoted standby",
        lambda: _try(lambda: bouncer.fetchval("SELECT inet_server_port()")) == standby.port,
        timeout=15,
        logs=bouncer.log_text,
    )
    assert bouncer.fetchval("SELECT pg_is_in_recovery()") is False


def _try(probe: Callable[[], object]) -> object:
    try:
        return probe()
    except (OSError, asyncpg.PostgresError):
        return None


# -- read-only ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_read_only_server_refuses_writes(pg_primary: PgCluster) -> None:
    pg_primary.execute("CREATE TABLE t (x int)")

    pg_primary.set_read_only(True)

    with pytest.raises(asyncpg.PostgresError) as refused:
        pg_primary.execute("INSERT INTO t VALUES (1)")
    assert refused.value.sqlstate == "25006"
    assert pg_primary.fetchval("SELECT count(*) FROM t") == 0

    pg_primary.set_read_only(False)

    assert pg_primary.execute("INSERT INTO t VALUES (2)") == "INSERT 0 1"


# -- skewed clocks ------------------------------------------------------------------------------

_CLOCKS = """
import json, time
wall, mono = time.time(), time.monotonic()
time.sleep(0.3)
print(json.dumps({"wall": wall, "mono": mono, "wall_after": time.time(),
                  "mono_after": time.monotonic()}))
"""


@pytest.mark.usefixtures("faketime_available")
@pytest.mark.parametrize("offset", [3600.0, -90.0])
def test_faketime_shifts_the_wall_clock_only(offset: float, tmp_path: Path) -> None:
    env = faketime_env(offset)
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"

    wall_before, mono_before = time.time(), time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CLOCKS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    wall_after, mono_after = time.time(), time.monotonic()
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout)

    # Wall clock: shifted by the offset (the child ran between our two readings).
    assert wall_before + offset - 0.5 <= child["wall"] <= wall_after + offset + 0.5
    # Monotonic clock: the machine's own (system-wide), not shifted.
    assert mono_before - 0.5 <= child["mono"] <= mono_after + 0.5
    # Both keep running at the normal rate, and time.sleep works under libfaketime.
    assert 0.29 <= child["mono_after"] - child["mono"] < 2
    assert 0.25 <= child["wall_after"] - child["wall"] < 2


def test_require_topology_tools_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topologies, "find_pgbouncer", lambda: None)

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="pgbouncer"):
        topologies.require_topology_tools("pgbouncer")

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="pgbouncer"):
        topologies.require_topology_tools("pgbouncer")
