"""Two real nodes behind a real PgBouncer (Debian's, 1.18), in transaction and in session mode.

PgBouncer runs with the [pgbouncer] settings of the snippets in docs/operations.md (only what
names this machine is replaced: addresses, ports, auth and its files), in front of a throwaway
PostgreSQL cluster. Hundreds of creates from several threads must all be acknowledged, every job
must run exactly once (the /record endpoint writes a line per start), and no node may log a
prepared-statement error.
"""

from __future__ import annotations

import configparser
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.e2e import REPO_ROOT, Server, query, run_cli, server_factory, wait_for
from tests.support.load import Creator, starts_per_job
from tests.support.topologies import PgBouncer, PgCluster

pytestmark = [
    pytest.mark.topologies,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

DOCS = REPO_ROOT / "docs" / "operations.md"
SNIPPET = "<!-- tested: tests/topologies/test_pgbouncer.py reads this block -->"
# What a documented pgbouncer.ini says about the machine it runs on, not about pooling.
LOCAL_SETTINGS = {"listen_addr", "listen_port", "auth_type", "auth_file"}
JOBS = 300


def documented_settings(pool_mode: str) -> dict[str, str]:
    """The [pgbouncer] settings of the operations.md snippet for `pool_mode`."""
    blocks = re.findall(re.escape(SNIPPET) + r"\n```ini\n(.*?)```", DOCS.read_text(), re.S)
    for block in blocks:
        ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
        ini.read_string(block)
        section = dict(ini["pgbouncer"])
        if section.get("pool_mode") == pool_mode:
            return {k: v for k, v in section.items() if k not in LOCAL_SETTINGS}
    raise AssertionError(f"docs/operations.md has no tested snippet with pool_mode = {pool_mode}")


def documented_bouncer(
    make: Callable[..., PgBouncer], cluster: PgCluster, pool_mode: str
) -> PgBouncer:
    settings = documented_settings(pool_mode)
    return make(
        cluster,
        pool_mode=settings.pop("pool_mode"),
        default_pool_size=int(settings.pop("default_pool_size")),
        settings=settings,
    )


def jobs_database(cluster: PgCluster, workdir: Path) -> str:
    url = cluster.create_database("jobs")
    upgraded = run_cli(["db", "upgrade", "--database-url", url], workdir)
    assert upgraded.returncode == 0, upgraded.stderr
    return url


def all_done(url: str, count: int) -> bool:
    rows = query(url, "SELECT count(*) AS n FROM jobs WHERE status = 'done'")
    return rows[0]["n"] == count


def check_every_job_ran_once(direct: str, creator: Creator, servers: list[Server]) -> None:
    ids = creator.acknowledged
    wait_for(f"{len(ids)} jobs to be done", lambda: all_done(direct, len(ids)), timeout=90)
    starts = starts_per_job(creator.record)
    assert sorted(starts) == ids
    assert {n for n in starts.values()} == {1}, {i: n for i, n in starts.items() if n > 1}
    attempts = query(direct, "SELECT job_id, count(*) AS n FROM job_attempts GROUP BY job_id")
    assert {r["n"] for r in attempts} == {1} and len(attempts) == len(ids)
    for server in servers:
        logs = server.logs()
        assert "prepared statement" not in logs, logs
        assert "Traceback" not in logs, logs


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_two_nodes_through_pgbouncer(
    pool_mode: str,
    pg_primary: PgCluster,
    pgbouncer_factory: Callable[..., PgBouncer],
    tmp_path: Path,
) -> None:
    """Transaction mode with a direct LISTEN connection; session mode with the documented pool
    size for two nodes of --pool-size 10."""
    direct = jobs_database(pg_primary, tmp_path)
    bouncer = documented_bouncer(pgbouncer_factory, pg_primary, pool_mode)
    if pool_mode == "transaction":
        args = ["--database-pooler", "transaction", "--listen-database-url", direct]
    else:
        args = ["--database-pooler", "session", "--pool-size", "10"]
    with server_factory(bouncer.url("jobs"), tmp_path) as make:
        servers = [
            make(node_id=f"{pool_mode}-{n}", extra_args=args, lease_seconds=10).start()
            for n in "ab"
        ]
        began = time.monotonic()
        creator = Creator(servers, tmp_path / "record.txt").run(JOBS)
        took = time.monotonic() - began
        assert not creator.errors, creator.errors
        assert len(creator.acknowledged) == JOBS
        check_every_job_ran_once(direct, creator, servers)
        print(f"\npgbouncer {pool_mode} figures: {JOBS} creates in {took:.2f} s, no errors")
        owners = query(direct, "SELECT DISTINCT owner FROM jobs")
        assert {r["owner"] for r in owners} == {f"{pool_mode}-a", f"{pool_mode}-b"}
        for server in servers:  # LISTEN works, and its self-check said nothing
            assert "LISTEN" not in server.logs(), server.logs()


def test_transaction_pooling_without_a_listen_url_says_so_and_polls_fast(
    pg_primary: PgCluster, pgbouncer_factory: Callable[..., PgBouncer], tmp_path: Path
) -> None:
    """Told to poll every 5 s, nodes with no LISTEN look every 0.2 s: jobs created through a
    node with one slot are taken by the idle other within a second or two, not 5 s."""
    direct = jobs_database(pg_primary, tmp_path)
    bouncer = documented_bouncer(pgbouncer_factory, pg_primary, "transaction")
    args = ["--database-pooler", "transaction", "--poll-seconds", "5"]
    with server_factory(bouncer.url("jobs"), tmp_path) as make:
        busy = make(node_id="unheard-busy", extra_args=[*args, "--concurrency", "1"]).start()
        idle = make(node_id="unheard-idle", extra_args=args).start()
        time.sleep(1)  # both idle: the next look of each is at most 0.2 s away
        creator = Creator([busy], tmp_path / "record.txt", threads=1, seconds=0.5).run(8)
        assert not creator.errors, creator.errors
        check_every_job_ran_once(direct, creator, [busy, idle])
        rows = query(
            direct,
            "SELECT owner, extract(epoch FROM started_at - created_at) AS waited FROM jobs",
        )
        assert {r["owner"] for r in rows} == {"unheard-busy", "unheard-idle"}
        assert max(float(r["waited"]) for r in rows) < 2.0, rows
        for server in (busy, idle):
            logs = server.logs()
            assert logs.count("LISTEN cannot work through a transaction pooler") == 1, logs
