"""jobstore's figures, measured on real `jobstore serve` / `jobstore worker` processes.

Each measurement starts its node(s) on a fresh database (a scratch PostgreSQL database, created
and dropped here, or a new SQLite file) and returns plain numbers; benchmarks/run.py repeats
them, compares them with the peers and prints the table. Timings that happen inside the node
(start latency, drain) are read from the `jobs` table, as an operator would (docs/sql.md);
timings a client sees (create rate, round trip, lookup) are taken by the client.

Load generator and node share the machine's two cores: the figures are what one machine does
end to end, not what the node alone could do with a core of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "JOBSTORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# One /create/job of the JSON API on the built-in /echo endpoint, as a Kinetica client sends it.
CREATE = {"endpoint": "/echo", "request_encoding": "json", "data": "", "data_str": '{"n": 1}'}
SCRATCH_PREFIX = "jobstore_bench_"
_T0 = time.monotonic()


def log(message: str) -> None:
    """Progress, on stderr: the table goes to stdout."""
    elapsed = time.monotonic() - _T0
    print(f"[{elapsed // 60:3.0f}m{elapsed % 60:04.1f}s] {message}", file=sys.stderr, flush=True)


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


# -- databases -----------------------------------------------------------------------------


def pg_url(database: str) -> str:
    url = make_url(PG_ADMIN).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(pg_url(make_url(PG_ADMIN).database or "postgres"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_available() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        await pg_admin("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@asynccontextmanager
async def scratch_database(dialect: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh, empty database; gone afterwards (a PostgreSQL one is dropped even if in use)."""
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:10]}"
    if dialect == "sqlite":
        path = workdir / f"{name}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{path}{suffix}")
        return
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def sql_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only query, over a connection of our own."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(url).database or "", timeout=30)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    pg = await asyncpg.connect(url, timeout=10)
    try:
        return [tuple(r) for r in await pg.fetch(sql)]
    finally:
        await pg.close()


async def sql_script(url: str, *statements: str) -> None:
    """Run statements in order, each committed (VACUUM cannot run in a transaction)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(url).database or "", timeout=60, isolation_level=None)
        try:
            for sql in statements:
                conn.execute(sql)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url, timeout=10)
    try:
        for sql in statements:
            await pg.execute(sql)
    finally:
        await pg.close()


async def unfinished(url: str) -> int:
    # One count per state: with a million finished jobs SQLite took 33 ms over
    # `status IN ('queued', 'running')` against 1 ms for the two counts, ten times a second,
    # on the cores the node it measures runs on.
    [(count,)] = await sql_rows(
        url,
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'queued')"
        " + (SELECT count(*) FROM jobs WHERE status = 'running')",
    )
    return int(count)


def _ts(value: Any) -> datetime:
    """A timestamp as read back: datetime on PostgreSQL, naive UTC text on SQLite."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


async def migrate(url: str) -> None:
    """Create jobstore's schema with jobstore's own migrations."""
    from jobstore.store import Database, migrate_to_head

    db = Database(url, pool_size=1)
    try:
        await migrate_to_head(db)
    finally:
        await db.dispose()


async def queue_echo_jobs(url: str, count: int, batch: int = 1000) -> None:
    """Queue `count` /echo jobs through jobstore's own create path (validation, digest, the
    store's multi-row INSERT), a batch per transaction: the HTTP layer is left out only to
    save time, so that the drain starts from a full queue."""
    from jobstore.core.jobs import JobService
    from jobstore.domain.clock import SystemClock
    from jobstore.domain.models import Encoding, Payload
    from jobstore.endpoints.registry import default_registry
    from jobstore.store import Database, migrate_to_head

    db = Database(url, pool_size=1)
    try:
        await migrate_to_head(db)
        service = JobService(db, default_registry())
        store = db.jobs
        clock = SystemClock()
        payload = Payload(Encoding.JSON, text=CREATE["data_str"])
        for start in range(0, count, batch):
            news = [
                service.prepare_job("/echo", payload, {}, source_ip="127.0.0.1")
                for _ in range(min(batch, count - start))
            ]
            async with db.transaction() as conn:
                await store.job_create_many(conn, news, clock.now())
    finally:
        await db.dispose()


# -- nodes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """A `jobstore serve` (API and executor) or `jobstore worker` (executor) process."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        command: str = "serve",
        args: Sequence[str] = (),
        processes: int = 1,
    ) -> None:
        self.url = url
        self.command = command
        self.port = free_port()
        self.args = [*args, "--processes", str(processes)] if processes > 1 else list(args)
        self.processes = processes
        self.log_path = workdir / f"node-{uuid.uuid4().hex[:8]}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Node:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
        argv = [sys.executable, "-m", "jobstore", self.command, "--database-url", self.url]
        argv += ["--log-level", "warning", "--node-id", f"bench-{self.command}", *self.args]
        if self.command == "serve":
            argv += ["--port", str(self.port)]
        with self.log_path.open("wb") as errors:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=errors
            )
        if self.command == "serve":
            await self._wait_for_http()
        return self

    async def _wait_for_http(self) -> None:
        assert self.proc is not None
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if self.proc.returncode is not None:
                    break
                try:
                    await client.get(f"{self.base}/")
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        await self.__aexit__()
        raise RuntimeError(f"the node did not start:\n{self.log_tail()}")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def check(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"the node exited ({self.proc.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def serving_pids(self) -> list[int]:
        """The processes that do the work: the supervisor's children when it has some (with
        --processes; not multiprocessing's resource tracker), else the node's one process."""
        assert self.proc is not None
        tree = process_tree(self.proc.pid)
        if self.processes == 1 or len(tree) == 1:
            return tree
        return [pid for pid in tree[1:] if b"resource_tracker" not in _cmdline(pid)]

    def peak_rss_mb(self) -> float:
        """The high-water mark of resident memory (VmHWM), in MB, of the node's largest
        process (with --processes, the supervisor's children are the node's processes)."""
        assert self.proc is not None
        return max(memory_mb(pid) for pid in process_tree(self.proc.pid))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                pids += process_tree(int(child))
    return pids


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of process `pid` from /proc (VmHWM: its peak RSS; VmRSS: its RSS now),
    in MB; 0 once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith(f"{field}:")), "0 0")
    return int(line.split()[1]) / 1024


async def wait_until_drained(url: str, node: Node, limit: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + limit
    while await unfinished(url):
        node.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still unfinished after {limit:.0f}s")
        await asyncio.sleep(every)


class Client:
    """A minimal keep-alive HTTP/1.1 client: one connection, one request at a time.

    For the one-at-a-time figures (latency, round trip, lookups). httpx costs about a
    millisecond of client CPU per request on this kind of machine, more than a lookup itself;
    this costs a few tens of microseconds, so the figures are the node's."""

    def __init__(self, node: Node) -> None:
        self.port = node.port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def _reconnect_if_closed(self) -> None:
        """uvicorn closes a keep-alive connection idle for 5 s (say, while a table fills)."""
        assert self.reader is not None and self.writer is not None
        if self.reader.at_eof() or self.writer.is_closing():
            await self.__aexit__()
            await self.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def _exchange(self, method: str, path: str, body: bytes = b"") -> bytes:
        """One request; the answer's body (raises unless HTTP 200)."""
        await self._reconnect_if_closed()
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        answer = await self.reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
        return answer

    async def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON; the answer's JSON envelope (raises unless HTTP 200)."""
        envelope: dict[str, Any] = json.loads(
            await self._exchange("POST", path, json.dumps(payload).encode())
        )
        return envelope

    async def get_text(self, path: str) -> str:
        return (await self._exchange("GET", path)).decode()

    async def create(self) -> int:
        created = await self.post("/create/job", CREATE)
        return int(json.loads(created["data_str"])["job_id"])

    async def job_wait(self, job_id: int, seconds: float) -> str:
        """The job's state by a long poll of the REST API (answered when the job ends)."""
        got = json.loads(await self._exchange("GET", f"/api/v1/jobs/{job_id}?wait={seconds:g}"))
        return str(got["status"])

    async def until_done(self, job_id: int, *, long_poll: bool = False) -> int:
        """Ask until the job is done, by /get/job in a loop or by REST long polls; how many
        requests it took."""
        asked = 1
        if long_poll:
            while await self.job_wait(job_id, 10) != "done":
                asked += 1
        else:
            while await self.job_status(job_id=job_id) != "DONE":
                asked += 1
        return asked

    async def job_status(self, *, job_id: int = 0, tag: str = "") -> str:
        options = {"job_tag": tag} if tag else {}
        got = await self.post("/get/job", {"job_id": job_id, "options": options})
        return str(json.loads(got["data_str"])["job_status"])


# -- HTTP create rate and memory -----------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


async def create_rate(
    dialect: str, workdir: Path, connections: int, seconds: float, processes: int = 1
) -> dict[str, Any]:
    """Creates per second from `connections` keep-alive clients against one fresh node of
    `processes` processes (whose executors drain the jobs meanwhile), and the node's peak RSS
    (of its largest process)."""
    async with (
        scratch_database(dialect, workdir) as url,
        Node(url, workdir, processes=processes) as node,
    ):
        if have_wrk():
            await _wrk(node, connections, 1.0)  # warm up: imports, pools, statement caches
            result = await _wrk(node, connections, seconds)
        else:
            result = await _httpx_rate(node, connections, int(seconds * 300))
        result["peak_rss_mb"] = node.peak_rss_mb()
        node.check()
        return result


async def _wrk(node: Node, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(CREATE))
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", script.name, f"{node.base}/create/job", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        os.unlink(script.name)
    text = out.decode()
    if "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"some creates failed:\n{text}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    result: dict[str, Any] = {"rate": rate, "client": "wrk"}
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if found:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
            result[f"latency_p{pct}_ms"] = float(found.group(1)) * scale
    return result


async def _httpx_rate(node: Node, connections: int, requests: int) -> dict[str, Any]:
    """Without wrk: httpx, which itself caps the figure at a few hundred per second."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    remaining = requests

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            reply = await client.post("/create/job", json=CREATE)
            if reply.status_code != 200:
                raise RuntimeError(f"create failed: {reply.status_code} {reply.text}")

    async with httpx.AsyncClient(base_url=node.base, limits=limits, timeout=60) as client:
        await client.post("/create/job", json=CREATE)
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(connections)))
        return {"rate": requests / (time.perf_counter() - started), "client": "httpx"}


# -- drain ---------------------------------------------------------------------------------


async def drain(
    dialect: str, workdir: Path, jobs: int, concurrency: int, processes: int = 1, limit: float = 900
) -> dict[str, Any]:
    """Queue `jobs` /echo jobs, then start one `jobstore worker` (of `processes` processes,
    each with `concurrency`) and time it to the last one.

    The rate is jobs done over the time from the first start to the last finish, both written
    by the node into `jobs`; `wall_rate` also counts the worker's own start-up."""
    async with scratch_database(dialect, workdir) as url:
        log(f"    queueing {jobs} jobs")
        await queue_echo_jobs(url, jobs)
        started = time.perf_counter()
        args = ["--concurrency", str(concurrency), "--migrate", "false"]
        async with Node(url, workdir, command="worker", args=args, processes=processes) as node:
            await wait_until_drained(url, node, limit)
            wall = time.perf_counter() - started
            rss = node.peak_rss_mb()
        rows = await sql_rows(
            url,
            "SELECT min(started_at), max(finished_at), count(*) FROM jobs WHERE status = 'done'",
        )
        first, last, done = rows[0]
        span = (_ts(last) - _ts(first)).total_seconds()
        if done != jobs:
            raise RuntimeError(f"{done} of {jobs} jobs ended done")
        return {
            "rate": done / span,
            "window_seconds": span,
            "wall_rate": jobs / wall,
            "concurrency": concurrency,
            "processes": processes,
            "peak_rss_mb": rss,
        }


# -- idle start latency and round trip -----------------------------------------------------


async def idle_start_latency(
    dialect: str, workdir: Path, count: int, pause: float
) -> dict[str, Any]:
    """Create `count` jobs one at a time, `pause` seconds apart, on an idle node; then read
    `started_at - created_at` of each from the jobs table (milliseconds)."""
    async with scratch_database(dialect, workdir) as url, Node(url, workdir) as node:
        async with Client(node) as client:
            await asyncio.sleep(1.0)  # let the executor settle into its idle wait
            for _ in range(count):
                await client.create()
                await asyncio.sleep(pause)
        await wait_until_drained(url, node, 60)
        rows = await sql_rows(url, "SELECT created_at, started_at FROM jobs")
    latencies = [(_ts(s) - _ts(c)).total_seconds() * 1000 for c, s in rows]
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "count": len(latencies),
        "samples_ms": [round(x, 3) for x in latencies],
    }


async def round_trip(
    dialect: str, workdir: Path, count: int, *, long_poll: bool = False
) -> dict[str, Any]:
    """Create a job over HTTP and poll /get/job until it is DONE, one job at a time; with
    `long_poll`, ask the REST API to answer once it has ended (`?wait=`) instead."""
    times, polls = [], []
    async with (
        scratch_database(dialect, workdir) as url,
        Node(url, workdir) as node,
        Client(node) as client,
    ):
        for i in range(count + 10):
            started = time.perf_counter()
            asked = await client.until_done(await client.create(), long_poll=long_poll)
            if i >= 10:  # the first few warm the node up
                times.append((time.perf_counter() - started) * 1000)
                polls.append(asked)
    return {
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "count": count,
        "get_job_calls_p50": percentile(polls, 50),
    }


# -- lookup at scale -----------------------------------------------------------------------


async def _fill(url: str, dialect: str, template_id: int, first: int, last: int) -> None:
    """Copy the finished template job into tags lookup-<first>..lookup-<last>: same columns,
    same values (a real /echo job's), its own job_id and job_tag."""
    if dialect == "sqlite":
        names = [r[1] for r in await sql_rows(url, "PRAGMA table_info(jobs)")]
    else:
        names = [
            r[0]
            for r in await sql_rows(
                url,
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'jobs' AND table_schema = current_schema()",
            )
        ]
    copied = [n for n in names if n not in ("job_id", "job_tag")]
    columns = ", ".join(copied)
    values = ", ".join(f"t.{n}" for n in copied)
    if dialect == "sqlite":
        sql = (
            f"WITH RECURSIVE s(g) AS (SELECT {first} UNION ALL SELECT g + 1 FROM s"
            f" WHERE g < {last}) INSERT INTO jobs ({columns}, job_tag)"
            f" SELECT {values}, 'lookup-' || printf('%07d', s.g) FROM jobs t, s"
            f" WHERE t.job_id = {template_id}"
        )
        await asyncio.to_thread(_sqlite_exec, url, sql, "ANALYZE")
    else:
        sql = (
            f"INSERT INTO jobs ({columns}, job_tag)"
            f" SELECT {values}, 'lookup-' || lpad(g::text, 7, '0')"
            f" FROM jobs t, generate_series({first}, {last}) g WHERE t.job_id = {template_id}"
        )
        await sql_script(url, sql, "VACUUM ANALYZE jobs")


def _sqlite_exec(url: str, *statements: str) -> None:
    conn = sqlite3.connect(make_url(url).database or "", timeout=60, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(statements[0])
        conn.execute("COMMIT")
        for sql in statements[1:]:
            conn.execute(sql)
    finally:
        conn.close()


async def lookups(
    dialect: str,
    workdir: Path,
    row_counts: Sequence[int],
    count: int,
    runs: int,
    results: dict[int, dict[str, Any]] | None = None,
) -> dict[int, dict[str, Any]]:
    """/get/job by tag from one keep-alive client, with the jobs table filled to each of
    `row_counts` rows (ascending, filled incrementally in one database)."""
    results = {} if results is None else results  # filled as it goes: kept if a later size fails
    async with (
        scratch_database(dialect, workdir) as url,
        Node(url, workdir) as node,
        Client(node) as client,
    ):
        template = await client.create()
        await wait_until_drained(url, node, 30)
        filled = 1
        for rows in sorted(row_counts):
            started = time.perf_counter()
            await _fill(url, dialect, template, filled, rows - 1)
            filled = rows
            [(counted,)] = await sql_rows(url, "SELECT count(*) FROM jobs")
            if counted != rows:
                raise RuntimeError(f"the jobs table has {counted} rows, not {rows}")
            log(f"    {dialect}: filled to {rows:,} rows in {time.perf_counter() - started:.1f}s")
            if not results:  # a node fresh from its start: warm it up before the first
                await _time_lookups(client, rows, 1000)
            per_run = [await _time_lookups(client, rows, count) for _ in range(runs)]
            results[rows] = {
                "p50_ms": summary([r["p50_ms"] for r in per_run]),
                "p99_ms": summary([r["p99_ms"] for r in per_run]),
                "lookups": count,
            }
    return results


async def _time_lookups(client: Client, rows: int, count: int) -> dict[str, float]:
    tags = [f"lookup-{random.randrange(1, rows):07d}" for _ in range(count + 100)]
    times = []
    for i, tag in enumerate(tags):
        started = time.perf_counter()
        status = await client.job_status(tag=tag)
        elapsed = (time.perf_counter() - started) * 1000
        if status != "DONE":
            raise RuntimeError(f"lookup of {tag}: {status}, not DONE")
        if i >= 100:  # warm-up
            times.append(elapsed)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}
