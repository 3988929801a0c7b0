"""`make soak`: is a node flat under sustained load, and with a long history?

    python benchmarks/soak.py [--minutes 20] [--rate 1000] [--databases postgres,sqlite]
                              [--processes 2] [--concurrency 64] [--retain 3m]
                              [--history-rows 1000000]

Two parts, on each database, each on a scratch database of its own (see jobstore_bench.py):

1. The soak: one `jobstore serve` with retention on (--retain-done), and creates sent at a
   steady --rate for --minutes (an open loop over 48 keep-alive connections: a create is due
   every 1/rate s and its latency counts from then), while the node's own executors drain
   them. Every minute: creates and finishes per second, create p99, claim p99 (the node's
   histogram, over that minute), queue depth, RSS of each node process, and the size of the
   jobs and job_attempts tables and their indexes. Plotted into
   benchmarks/results/soak-<db>-<time>.png and written to a JSON beside it. Once retention
   has reached its steady state (the first --retain, plus two minutes), no figure may trend
   upward: the mean of the last third of the minutes must stay within 10% (and a small
   absolute allowance) of the first third's.
2. History: drain 100,000 queued jobs and time 2,000 /get/job lookups, first with an empty
   history, then with --history-rows finished jobs in the table: no more than 10% slower.

Prints a verdict per figure; exits 1 if any trend upward or history check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jobstore_bench as jb

RESULTS = Path(__file__).resolve().parent / "results"
# Figures that must not trend upward, with an absolute allowance below which a change is noise.
FLAT = {
    "create_p99_ms": 2.0,
    "claim_p99_ms": 2.0,
    "rss_mb": 5.0,
    "queue_depth": 200.0,
    "jobs_table_mb": 2.0,
    "jobs_indexes_mb": 2.0,
    "attempts_mb": 2.0,
}
CONNECTIONS = 48  # the load's keep-alive connections; a create waits for a free one


# -- the soak ------------------------------------------------------------------------------


async def soak(
    dialect: str,
    workdir: Path,
    minutes: int,
    rate: int,
    processes: int,
    retain: str,
    concurrency: int,
) -> list[dict[str, Any]]:
    args = ["--retain-done", retain, "--prune-seconds", "10", "--concurrency", str(concurrency)]
    samples: list[dict[str, Any]] = []
    async with (
        jb.scratch_database(dialect, workdir) as url,
        jb.Node(url, workdir, args=args, processes=processes) as node,
        jb.Client(node) as client,
    ):
        before = await _scrape(client)
        for minute in range(1, minutes + 1):
            created = await paced_creates(node, rate, 60)
            node.check()
            after = await _scrape(client)
            finished = after["finished"] - before["finished"]
            claim_p99 = _histogram_p99(before["claim"], after["claim"])
            before = after
            sample = {
                "minute": minute,
                "create_rate": created["rate"],
                "create_p99_ms": created.get("latency_p99_ms"),
                "finish_rate": finished / 60,
                "claim_p99_ms": claim_p99,
                "queue_depth": after["queue_depth"],
                "rss_mb": max(jb.memory_mb(pid, "VmRSS") for pid in node.serving_pids()),
                **await _sizes(url, dialect),
            }
            samples.append(sample)
            jb.log(
                f"  {dialect} minute {minute}/{minutes}: "
                + ", ".join(f"{k} {_num(v)}" for k, v in sample.items() if k != "minute")
            )
    return samples


async def paced_creates(node: jb.Node, rate: int, seconds: float) -> dict[str, Any]:
    """Creates sent at a steady `rate` for `seconds`, whatever the node's latency (an open
    loop: a create is due every 1/rate s, and its latency counts from when it was due, so a
    slow node cannot slow the load down and hide it)."""
    loop = asyncio.get_running_loop()
    free: asyncio.Queue[jb.Client] = asyncio.Queue()
    clients = [jb.Client(node) for _ in range(CONNECTIONS)]
    for client in clients:
        await client.__aenter__()
        free.put_nowait(client)
    latencies: list[float] = []
    failures = 0

    async def create(due: float) -> None:
        nonlocal failures
        client = await free.get()
        try:
            await client.create()
            latencies.append((loop.time() - due) * 1000)
        except Exception:
            failures += 1
        finally:
            free.put_nowait(client)

    pending: set[asyncio.Task[None]] = set()
    start, sent = loop.time(), 0
    try:
        while (due := start + sent / rate) < start + seconds:
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.create_task(create(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.gather(*pending)
    finally:
        for client in clients:
            await client.__aexit__()
    if failures:
        raise RuntimeError(f"{failures} of {sent} creates failed")
    return {
        "rate": len(latencies) / (loop.time() - start),
        "latency_p50_ms": jb.percentile(latencies, 50),
        "latency_p99_ms": jb.percentile(latencies, 99),
    }


async def _scrape(client: jb.Client) -> dict[str, Any]:
    """The node's counters that the soak follows, from /metrics (all processes summed)."""
    text = await client.get_text("/metrics")
    finished = sum(
        float(v) for v in re.findall(r"^jobstore_jobs_finished_total\{[^}]*\} (\S+)$", text, re.M)
    )
    buckets = {
        float("inf") if le == "+Inf" else float(le): float(v)
        for le, v in re.findall(
            r'^jobstore_claim_duration_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M
        )
    }
    depth = re.search(r"^jobstore_queue_depth (\S+)$", text, re.M)
    return {
        "finished": finished,
        "claim": buckets,
        "queue_depth": float(depth.group(1)) if depth else 0.0,
    }


def _histogram_p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 99th percentile of a histogram's observations between two scrapes, in ms: the
    upper bound of the bucket it falls in (as precise as the buckets are)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= 0.99 * total:
            return bound * 1000 if math.isfinite(bound) else None
    return None


async def _sizes(url: str, dialect: str) -> dict[str, float]:
    """Megabytes of the jobs table, its indexes, and job_attempts (with its indexes)."""
    mb = 1024 * 1024
    if dialect == "postgres":
        [(table, indexes, attempts)] = await jb.sql_rows(
            url,
            "SELECT pg_table_size('jobs'), pg_indexes_size('jobs'),"
            " pg_total_relation_size('job_attempts')",
        )
        return {
            "jobs_table_mb": table / mb,
            "jobs_indexes_mb": indexes / mb,
            "attempts_mb": attempts / mb,
        }
    rows = await jb.sql_rows(
        url,
        "SELECT CASE WHEN name = 'jobs' THEN 'table' WHEN tbl_name = 'jobs' THEN 'indexes'"
        " WHEN tbl_name = 'job_attempts' THEN 'attempts' END, sum(pgsize)"
        " FROM dbstat JOIN sqlite_schema USING (name) GROUP BY 1",
    )
    found = {kind: size for kind, size in rows if kind}
    return {
        "jobs_table_mb": found.get("table", 0) / mb,
        "jobs_indexes_mb": found.get("indexes", 0) / mb,
        "attempts_mb": found.get("attempts", 0) / mb,
    }


def trends(samples: list[dict[str, Any]], steady_from: int) -> dict[str, dict[str, Any]]:
    """Per figure: the first and last third of the steady minutes, and whether it grew."""
    steady = [s for s in samples if s["minute"] >= steady_from]
    third = max(1, len(steady) // 3)
    verdicts = {}
    for name, allowance in FLAT.items():
        values = [s[name] for s in steady if s.get(name) is not None]
        if len(values) < 3:
            verdicts[name] = {"verdict": "too few steady minutes"}
            continue
        first = sum(values[:third]) / third
        last = sum(values[-third:]) / third
        grew = last > first * 1.10 and last - first > allowance
        verdicts[name] = {"first": first, "last": last, "flat": not grew}
    return verdicts


def plot(dialect: str, samples: list[dict[str, Any]], steady_from: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (("create_rate", "finish_rate"), "jobs/s", "creates and finishes per second"),
        (("create_p99_ms", "claim_p99_ms"), "ms", "create p99 (from when due), claim p99 (node)"),
        (("rss_mb",), "MB", "RSS of the largest node process"),
        (("queue_depth",), "jobs", "queue depth at the end of each minute"),
        (("jobs_table_mb", "jobs_indexes_mb"), "MB", "jobs: table and indexes"),
        (("attempts_mb",), "MB", "job_attempts: table and indexes"),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    minutes = [s["minute"] for s in samples]
    for ax, (names, unit, title) in zip(axes.flat, panels, strict=True):
        for name in names:
            ax.plot(minutes, [s.get(name) for s in samples], marker="o", label=name)
        ax.axvline(steady_from, color="grey", linestyle="--", linewidth=1)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right", fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("minute (dashed: retention at steady state)")
    figure.suptitle(f"jobstore soak on {dialect}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


# -- history ---------------------------------------------------------------------------------


async def history(dialect: str, workdir: Path, rows: int, queued: int) -> dict[str, Any]:
    """Drain rate and /get/job p99 with an empty history, then with `rows` finished jobs."""
    figures: dict[str, Any] = {}
    for label, history_rows in (("empty", 0), ("full", rows)):
        async with jb.scratch_database(dialect, workdir) as url:
            if history_rows:
                jb.log(f"  {dialect}: filling {history_rows:,} finished jobs")
                await _finished_history(url, dialect, workdir, history_rows)
            jb.log(f"  {dialect} ({label} history): draining {queued:,} queued jobs")
            await jb.migrate(url)
            [(before,)] = await jb.sql_rows(url, "SELECT coalesce(max(job_id), 0) FROM jobs")
            await jb.queue_echo_jobs(url, queued)
            async with jb.Node(url, workdir, args=["--concurrency", "256"]) as node:
                await jb.wait_until_drained(url, node, 900)
                # From the first start to the last finish, as the node recorded them.
                [(first, last)] = await jb.sql_rows(
                    url,
                    f"SELECT min(started_at), max(finished_at) FROM jobs WHERE job_id > {before}",
                )
                drain_rate = queued / (jb._ts(last) - jb._ts(first)).total_seconds()
                async with jb.Client(node) as client:
                    [(low, high)] = await jb.sql_rows(
                        url, "SELECT min(job_id), max(job_id) FROM jobs"
                    )
                    lookups = await _time_lookups(client, int(low), int(high), 2000)
            figures[label] = {"drain_rate": drain_rate, **lookups}
            jb.log(f"    {label}: {figures[label]}")
    empty, full = figures["empty"], figures["full"]
    figures["drain_ok"] = full["drain_rate"] >= 0.9 * empty["drain_rate"]
    figures["lookup_ok"] = full["p99_ms"] <= 1.1 * empty["p99_ms"] + 0.1
    return figures


async def _finished_history(url: str, dialect: str, workdir: Path, rows: int) -> None:
    async with jb.Node(url, workdir) as node, jb.Client(node) as client:
        template = await client.create()
        await jb.wait_until_drained(url, node, 30)
    await jb._fill(url, dialect, template, 1, rows - 1)


async def _time_lookups(client: jb.Client, low: int, high: int, count: int) -> dict[str, float]:
    times = []
    for i in range(count + 100):
        job_id = random.randint(low, high)
        started = time.perf_counter()
        await client.job_status(job_id=job_id)
        if i >= 100:  # warm-up
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": jb.percentile(times, 50), "p99_ms": jb.percentile(times, 99)}


# -- the run ---------------------------------------------------------------------------------


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else str(value)


async def amain(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    retain_minutes = jb_minutes(args.retain)
    steady_from = math.ceil(retain_minutes) + 2
    failed = False
    report: dict[str, Any] = {"settings": vars(args), "soak": {}, "history": {}}
    with tempfile.TemporaryDirectory(prefix="jobstore-soak-") as tmp:
        for dialect in args.databases:
            if args.minutes:
                jb.log(f"soak on {dialect}: {args.minutes} min at {args.rate} jobs/s")
                samples = await soak(
                    dialect,
                    Path(tmp),
                    args.minutes,
                    args.rate,
                    args.processes,
                    args.retain,
                    args.concurrency,
                )
                verdicts = trends(samples, steady_from)
                png = RESULTS / f"soak-{dialect}-{stamp}.png"
                plot(dialect, samples, steady_from, png)
                report["soak"][dialect] = {"samples": samples, "trends": verdicts, "plot": str(png)}
                print(f"soak on {dialect} ({png.relative_to(RESULTS.parent.parent)}):")
                for name, v in verdicts.items():
                    if "flat" not in v:
                        print(f"  {name}: {v['verdict']}")
                        continue
                    failed |= not v["flat"]
                    shown = "flat" if v["flat"] else "TRENDS UP"
                    print(f"  {name}: {_num(v['first'])} -> {_num(v['last'])}: {shown}")
            if args.history_rows:
                jb.log(f"history on {dialect}: {args.history_rows:,} finished jobs")
                figures = await history(dialect, Path(tmp), args.history_rows, args.queued)
                report["history"][dialect] = figures
                failed |= not (figures["drain_ok"] and figures["lookup_ok"])
                e, f = figures["empty"], figures["full"]
                print(
                    f"history on {dialect}: drain {e['drain_rate']:,.0f} -> {f['drain_rate']:,.0f}"
                    f" jobs/s ({'ok' if figures['drain_ok'] else 'SLOWER'}), /get/job p99 "
                    f"{e['p99_ms']:.2f} -> {f['p99_ms']:.2f} ms "
                    f"({'ok' if figures['lookup_ok'] else 'SLOWER'})"
                )
    out = RESULTS / f"soak-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"everything measured is in {out.relative_to(RESULTS.parent.parent)}")
    return 1 if failed else 0


def jb_minutes(retain: str) -> float:
    from jobstore.domain.durations import parse_duration

    period = parse_duration(retain)
    if period is None:
        raise SystemExit("--retain must be a period (like 3m): the soak needs retention on")
    return period.total_seconds() / 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=20, help="soak length per database")
    parser.add_argument("--rate", type=int, default=1000, help="creates per second to hold")
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--processes", type=int, default=2, help="the node's --processes")
    parser.add_argument("--retain", default="3m", help="the node's --retain-done")
    # The default 8 jobs at a time bound a node's drain by its round trips, not its work:
    # SQLite's single writer at 8 per process finished about 600 /echo jobs a second.
    parser.add_argument("--concurrency", type=int, default=64, help="the node's, per process")
    parser.add_argument("--history-rows", type=int, default=1_000_000, help="0: skip history")
    parser.add_argument("--queued", type=int, default=100_000, help="history: jobs to drain")
    args = parser.parse_args()
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(amain(parse_args())))
