"""HTTP create rate and round trip of a real `jobstore serve`, on SQLite and PostgreSQL.

    python benchmarks/http_create.py [--databases sqlite,postgres] [--connections 16,64]
                                     [--requests 4000] [--runs 3]

Starts a node on a fresh database for each run and sends `/create/job` (JSON, `/echo`) from
CONNECTIONS concurrent keep-alive connections, with wrk when it is installed (a C client; the
Python fallback, httpx, limits the figure itself), while the node's executor drains the jobs.
Then it times create-to-DONE round trips one at a time. Prints a table (median, min, max over
the runs, and the node's peak RSS) and writes benchmarks/results/*.json. PostgreSQL comes from
JOBSTORE_BENCH_POSTGRES_URL (an admin URL; default the local server). Load generator and node
share the machine's two cores: the figures are what one machine does end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "JOBSTORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CREATE = {"endpoint": "/echo", "request_encoding": "json", "data": "", "data_str": '{"n": 1}'}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Node:
    """A `jobstore serve` process on a fresh database."""

    def __init__(self, dialect: str, workdir: Path) -> None:
        self.dialect = dialect
        self.port = free_port()
        self.pg_name = f"jobstore_bench_{uuid.uuid4().hex[:10]}"
        if dialect == "sqlite":
            self.url = f"sqlite:///{workdir / f'{self.pg_name}.db'}"
        else:
            base = PG_ADMIN.rsplit("/", 1)[0]
            self.url = f"{base}/{self.pg_name}"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Node:
        if self.dialect == "postgres":
            await pg_admin(f'CREATE DATABASE "{self.pg_name}"')
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jobstore", "serve", "--database-url", self.url,
            "--port", str(self.port), "--log-level", "warning", "--node-id", "bench",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    await client.post(f"{self.base}/show/system/status", json={"options": {}})
                    return self
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        raise RuntimeError("the node did not start")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 30)
        if self.dialect == "postgres":
            await pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(peak.split()[1]) / 1024


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


async def create_rate(node: Node, connections: int, requests: int) -> float:
    """Creates per second: with wrk when installed (a C client), else httpx (slower)."""
    if shutil.which("wrk"):
        return await _wrk_rate(node, connections, seconds=max(3, requests // 1000))
    return await _httpx_rate(node, connections, requests)


async def _wrk_rate(node: Node, connections: int, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(CREATE))
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
            f"{node.base}/create/job", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        os.unlink(script.name)
    text = out.decode()
    if "Non-2xx" in text:
        raise RuntimeError(f"some creates failed:\n{text}")
    line = next(x for x in text.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


async def _httpx_rate(node: Node, connections: int, requests: int) -> float:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            reply = await client.post("/create/job", json=CREATE)
            if reply.status_code != 200:
                raise RuntimeError(f"create failed: {reply.status_code} {reply.text}")

    async with httpx.AsyncClient(base_url=node.base, limits=limits, timeout=60) as client:
        await client.post("/create/job", json=CREATE)  # warm up
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        return requests / (time.perf_counter() - started)


async def round_trips(node: Node, count: int) -> list[float]:
    """Create a job, poll /get/job until DONE; milliseconds per job."""
    times = []
    async with httpx.AsyncClient(base_url=node.base, timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            created = (await client.post("/create/job", json=CREATE)).json()
            job_id = json.loads(created["data_str"])["job_id"]
            while True:
                got = (await client.post("/get/job", json={"job_id": job_id})).json()
                if json.loads(got["data_str"])["job_status"] == "DONE":
                    break
            times.append((time.perf_counter() - started) * 1000)
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--round-trips", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk): using httpx, which itself limits")
        print("the create rate to a few hundred per second on two cores.\n")
    with tempfile.TemporaryDirectory() as tmp:
        for dialect in args.databases.split(","):
            for conns in (int(c) for c in args.connections.split(",")):
                rates, rss = [], []
                for _ in range(args.runs):
                    async with Node(dialect, Path(tmp)) as node:
                        rates.append(await create_rate(node, conns, args.requests))
                        rss.append(node.rss_mb())
                results[f"create/{dialect}/{conns}"] = {**summary(rates), "peak_rss_mb": max(rss)}
            async with Node(dialect, Path(tmp)) as node:
                trips = await round_trips(node, args.round_trips)
            results[f"round_trip_ms/{dialect}"] = {
                "p50": percentile(trips, 50),
                "p99": percentile(trips, 99),
            }
    print(f"{'measure':<28}{'median':>10}{'min':>10}{'max':>10}{'rss MB':>10}")
    for name, r in results.items():
        if name.startswith("create"):
            print(
                f"{name + ' (jobs/s)':<28}{r['median']:>10.0f}{r['min']:>10.0f}"
                f"{r['max']:>10.0f}{r['peak_rss_mb']:>10.0f}"
            )
        else:
            p50, p99 = f"p50 {r['p50']:.1f}", f"p99 {r['p99']:.1f}"
            print(f"{name:<28}{p50:>10}{p99:>10}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"http_create-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
