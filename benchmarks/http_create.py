"""HTTP create rate and round trip of a real `jobstore serve`, on SQLite and PostgreSQL.

    python benchmarks/http_create.py [--databases sqlite,postgres] [--connections 16,64]
                                     [--requests 4000] [--runs 3] [--round-trips 200]

The quick look at two of the figures of `make bench` (benchmarks/run.py, which measures all of
them and compares with the peers); the measuring code is shared (jobstore_bench.py). Starts a
node on a fresh database for each run and sends `/create/job` (JSON, `/echo`) from CONNECTIONS
concurrent keep-alive connections with wrk when it is installed (a C client; the Python
fallback, httpx, limits the figure itself), while the node's executor drains the jobs. Then it
times create-to-DONE round trips one at a time. Prints a table (median, min, max over the
runs, and the node's peak RSS) and writes benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jobstore_bench as jb

RESULTS = Path(__file__).resolve().parent / "results"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--requests", type=int, default=4000, help="sets wrk's duration")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--round-trips", type=int, default=200)
    args = parser.parse_args()
    seconds = max(3, args.requests // 1000)
    results: dict[str, Any] = {}
    if not jb.have_wrk():
        print("wrk is not installed (apt-get install wrk): using httpx, which itself limits")
        print("the create rate to a few hundred per second on two cores.\n")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for dialect in args.databases.split(","):
            for conns in (int(c) for c in args.connections.split(",")):
                raw = []
                for run in range(args.runs):
                    jb.log(f"{dialect}, {conns} connections, run {run + 1}/{args.runs}")
                    raw.append(await jb.create_rate(dialect, workdir, conns, seconds))
                results[f"create/{dialect}/{conns}"] = {
                    **jb.summary([r["rate"] for r in raw]),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in raw),
                }
            jb.log(f"{dialect}, {args.round_trips} round trips")
            trips = await jb.round_trip(dialect, workdir, args.round_trips)
            results[f"round_trip_ms/{dialect}"] = trips
    print(f"{'measure':<28}{'median':>10}{'min':>10}{'max':>10}{'rss MB':>10}")
    for name, r in results.items():
        if name.startswith("create"):
            print(
                f"{name + ' (jobs/s)':<28}{r['median']:>10.0f}{r['min']:>10.0f}"
                f"{r['max']:>10.0f}{r['peak_rss_mb']:>10.0f}"
            )
        else:
            p50, p99 = f"p50 {r['p50_ms']:.1f}", f"p99 {r['p99_ms']:.1f}"
            print(f"{name:<28}{p50:>10}{p99:>10}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"http_create-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    asyncio.run(main())
