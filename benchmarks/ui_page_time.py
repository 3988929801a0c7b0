"""How long the dashboard's pages take on a big jobs table (not a pytest module: run it).

    .venv/bin/python benchmarks/ui_page_time.py --rows 1000000 --database sqlite
    .venv/bin/python benchmarks/ui_page_time.py --rows 1000000 --database postgres

Fills a fresh database with `--rows` jobs in one INSERT ... SELECT (a recursive CTE on SQLite,
generate_series on PostgreSQL): mostly done, some error and cancelled, a few queued and running
at the newest end, 100 users, four endpoints (one of them rare). Then serves the app (no
executor, authentication on) with uvicorn on a free port and times each page over HTTP, one
request at a time, as the admin `root` (who sees every job) and as `user7` (who sees only
their own 1%).

The per-state counts are cached for a second inside the service; this script empties that cache
before every request, so each figure includes a fresh count (the worst case for a page view).
PostgreSQL comes from JOBSTORE_TEST_POSTGRES_URL (default the local server); its database is
dropped at the end, and the SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from sqlalchemy.engine import make_url

from jobstore.api.app import create_app
from jobstore.api.ui import UiConfig
from jobstore.core.accounts import Authenticator
from jobstore.core.jobs import JobService
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database, migrate_to_head

PG_ADMIN_URL = os.environ.get(
    "JOBSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# One statement per dialect, with __N__ (the number of rows), __STATUS__ and __ENDPOINT__ put
# in by fill_sql(). Row g (1..N) is job g. The newest 20 are queued, the 20 before them
# running; of the rest, 1% are cancelled, 7% error and 92% done.
STATUS_SQL = """CASE WHEN g > __N__ - 20 THEN 'queued'
     WHEN g > __N__ - 40 THEN 'running'
     WHEN g % 100 = 0 THEN 'cancelled'
     WHEN g % 100 < 8 THEN 'error'
     ELSE 'done' END"""
ENDPOINT_SQL = """CASE WHEN g % 10000 = 5 THEN '/rare'
     WHEN g % 3 = 0 THEN '/sleep' WHEN g % 3 = 1 THEN '/echo' ELSE '/fail' END"""
COLUMNS = """job_id, job_tag, endpoint, request_encoding, request_text, request_digest,
  options, status, progress, status_map, response_encoding, response_text, remove_on_complete,
  retryable, max_attempts, attempt, cancel_requested, owner, lease_expires_at, created_at,
  started_at, updated_at, finished_at, created_by"""

PG_FILL = """
INSERT INTO jobs (__COLUMNS__)
SELECT g, 'bench-' || g, ep, 'json', '{"seconds": 1}', md5(g::text) || md5(g::text),
  '{}'::json, st, CASE WHEN st = 'done' THEN 100 ELSE 0 END,
  CASE WHEN st = 'error' THEN '{"error_message": "benchmark failure"}'::json ELSE '{}'::json END,
  CASE WHEN st = 'done' THEN 'json' END, CASE WHEN st = 'done' THEN '{"slept": 1}' END,
  false, true, 3, CASE WHEN st = 'queued' THEN 0 ELSE 1 END, false,
  CASE WHEN st = 'queued' THEN NULL ELSE 'bench-node' END,
  CASE WHEN st = 'running' THEN now() + interval '1 hour' END,
  t, CASE WHEN st <> 'queued' THEN t END, t + interval '1 second',
  CASE WHEN st IN ('done', 'error', 'cancelled') THEN t + interval '1 second' END,
  'user' || ((g / 7) % 100)
FROM (
  SELECT g, now() - (__N__ - g) * interval '1 second' AS t,
         __STATUS__ AS st, __ENDPOINT__ AS ep
  FROM generate_series(1, __N__) AS g
) AS s
"""

# SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text (see store/tables.py).
SQLITE_FILL = """
WITH RECURSIVE gen(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM gen WHERE g < __N__),
s AS (
  SELECT g, __STATUS__ AS st, __ENDPOINT__ AS ep,
    strftime('%Y-%m-%d %H:%M:%S', 'now', (g - __N__) || ' seconds') || '.000000' AS t,
    strftime('%Y-%m-%d %H:%M:%S', 'now', (g - __N__ + 1) || ' seconds') || '.000000' AS t1
  FROM gen
)
INSERT INTO jobs (__COLUMNS__)
SELECT g, 'bench-' || g, ep, 'json', '{"seconds": 1}', printf('%064d', g),
  '{}', st, CASE WHEN st = 'done' THEN 100 ELSE 0 END,
  CASE WHEN st = 'error' THEN '{"error_message": "benchmark failure"}' ELSE '{}' END,
  CASE WHEN st = 'done' THEN 'json' END, CASE WHEN st = 'done' THEN '{"slept": 1}' END,
  0, 1, 3, CASE WHEN st = 'queued' THEN 0 ELSE 1 END, 0,
  CASE WHEN st = 'queued' THEN NULL ELSE 'bench-node' END,
  CASE WHEN st = 'running'
       THEN strftime('%Y-%m-%d %H:%M:%S', 'now', '+1 hour') || '.000000' END,
  t, CASE WHEN st <> 'queued' THEN t END, t1,
  CASE WHEN st IN ('done', 'error', 'cancelled') THEN t1 END,
  'user' || ((g / 7) % 100)
FROM s
"""


def fill_sql(template: str, rows: int) -> str:
    return (
        template.replace("__COLUMNS__", COLUMNS)
        .replace("__STATUS__", STATUS_SQL)
        .replace("__ENDPOINT__", ENDPOINT_SQL)
        .replace("__N__", str(int(rows)))
    )


def _pg_dsn(database: str | None = None) -> str:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg_dsn(), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="jobstore-ui-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'jobs.db'}"
        return
    name = f"jobstore_ui_bench_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_dsn(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fill(url: str, rows: int) -> float:
    """Insert `rows` jobs; returns the seconds it took."""
    started = time.perf_counter()
    if url.startswith("sqlite"):
        import sqlite3

        path = make_url(url).database
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(fill_sql(SQLITE_FILL, rows))
            conn.commit()
            conn.execute("ANALYZE")
    else:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
        try:
            await conn.execute(fill_sql(PG_FILL, rows))
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('jobs', 'job_id'), max(job_id)) FROM jobs"
            )
            await conn.execute("VACUUM ANALYZE jobs")
        finally:
            await conn.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


async def measure(url: str, rows: int, runs: int) -> list[tuple[str, float, float, float]]:
    db = Database(url, pool_size=4)
    auth = Authenticator(db)
    await auth.add_user("root", "pw-root", admin=True)
    await auth.add_user("user7", "pw-user7")
    registry = default_registry([])
    service = JobService(db, registry)
    app = create_app(service, ui=UiConfig(authenticator=auth))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event to wait on)
        await asyncio.sleep(0.05)
    old = rows // 2
    old -= old % 100 == 0  # a done job, not a cancelled one
    mine = old - old % 700 + 7 * 7  # one of user7's jobs ((g / 7) % 100 == 7)
    pages = [
        ("root", "list, newest 50", "/ui"),
        ("root", "list, live refresh", "/ui/live"),
        ("root", "list, status=error", "/ui?status=error"),
        ("root", "list, status=cancelled", "/ui?status=cancelled"),
        ("root", "list, status=queued", "/ui?status=queued"),
        ("root", "list, status=running", "/ui?status=running"),
        ("root", "list, status=active", "/ui?status=active"),
        ("root", "list, endpoint=/rare", "/ui?endpoint=/rare"),
        ("root", "list, older page (middle)", f"/ui?before={old}"),
        ("root", "search by tag", f"/ui?q=bench-{old}"),
        ("root", "search by id", f"/ui?q={old}"),
        ("root", "job page", f"/ui/jobs/{old}"),
        ("root", "job page, live refresh", f"/ui/jobs/{rows}/live"),
        ("user7", "list, newest 50 (own jobs)", "/ui"),
        ("user7", "list, status=error (own)", "/ui?status=error"),
        ("user7", "job page (own)", f"/ui/jobs/{mine}"),
    ]
    results = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for user, label, path in pages:
                credentials = httpx.BasicAuth(user, f"pw-{user}")
                times = []
                for i in range(runs + 3):
                    service._counts.clear()  # every view pays for a fresh count (see above)
                    started = time.perf_counter()
                    response = await client.get(path, auth=credentials)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200, (path, response.status_code)
                    if i >= 3:  # the first few warm the caches, the pool and the login cache
                        times.append(elapsed * 1000)
                results.append(
                    (
                        f"{user:5} {label:27} {path}",
                        statistics.median(times),
                        percentile(times, 0.99),
                        max(times),
                    )
                )
    finally:
        server.should_exit = True
        await task
        await db.dispose()
    return results


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    args = parser.parse_args()
    async with fresh_database(args.database) as url:
        db = Database(url, pool_size=1)
        await migrate_to_head(db)
        await db.dispose()
        took = await fill(url, args.rows)
        print(f"{args.database}: {args.rows:,} jobs inserted in {took:.1f} s", flush=True)
        results = await measure(url, args.rows, args.runs)
    print(f"{'user / page':76} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, p50, p99, worst in results:
        print(f"{label:76} {p50:8.1f} {p99:8.1f} {worst:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
