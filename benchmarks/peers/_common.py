"""What every peer benchmark shares: the command line, the three figures, worker processes.

A peer module (pgqueuer_bench.py, ...) runs under its own virtual environment, so this file
uses the standard library only. The orchestrator (benchmarks/run.py) calls a peer module once
per figure and run, on a fresh PostgreSQL database:

    python peers/pgqueuer_bench.py --dsn postgresql://... --figure drain --jobs 50000

and reads one JSON object from the last line of its standard output. The module starts its
own worker processes (itself again, with `--role worker`), and reads its timings from the
peer's own tables, as jobstore's are read from `jobs`: a drain rate is jobs finished over the
time from the first start to the last finish, a start latency is the peer's "started"
timestamp minus its "enqueued" timestamp, both written by PostgreSQL's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Peer(Protocol):
    """One job queue library, driven the same way as every other."""

    name: str
    version: str

    def settings(self) -> dict[str, Any]:
        """The worker settings used (reported in the JSON)."""
        ...

    async def open(self, dsn: str) -> None:
        """Connect (and for the main role, install the schema)."""
        ...

    async def close(self) -> None: ...

    async def enqueue_one(self) -> None:
        """Enqueue one no-op job, the way an application does it: one call, one commit."""
        ...

    async def enqueue_bulk(self, count: int) -> None:
        """Queue `count` no-op jobs fast (setup for the drain, not measured)."""
        ...

    async def unfinished(self) -> int:
        """Jobs not finished yet (queued or running)."""
        ...

    async def drain_window(self) -> tuple[int, float]:
        """(jobs finished, seconds from the first start to the last finish), from the DB."""
        ...

    async def start_latencies_ms(self) -> list[float]:
        """Per finished job: started minus enqueued, in milliseconds, from the DB."""
        ...

    async def work(self, stop: asyncio.Event) -> None:
        """Run a worker until `stop` is set."""
        ...


@dataclass
class Options:
    dsn: str
    figure: str
    role: str
    jobs: int
    procs: int
    pause: float
    timeout: float
    extra: dict[str, Any] = field(default_factory=dict)


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--figure", choices=("enqueue", "drain", "latency"), default="drain")
    parser.add_argument("--role", choices=("main", "worker"), default="main")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--procs", type=int, default=0, help="worker processes (0: peer's best)")
    parser.add_argument("--pause", type=float, default=0.02, help="latency: seconds between jobs")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--extra", default="{}", help="JSON: peer settings to override")
    args = parser.parse_args(argv)
    return Options(
        dsn=args.dsn,
        figure=args.figure,
        role=args.role,
        jobs=args.jobs,
        procs=args.procs,
        pause=args.pause,
        timeout=args.timeout,
        extra=json.loads(args.extra),
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def log(message: str) -> None:
    print(f"  [{os.path.basename(sys.argv[0])}] {message}", file=sys.stderr, flush=True)


class Workers:
    """Worker processes: this same script with `--role worker`; each prints "ready" once up."""

    def __init__(self, options: Options, count: int) -> None:
        self.options = options
        self.count = count
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Workers:
        argv = [sys.executable, sys.argv[0], "--dsn", self.options.dsn, "--role", "worker"]
        argv += ["--extra", json.dumps(self.options.extra)]
        for _ in range(self.count):
            # Same process group as this script: the orchestrator's kill on timeout ends all.
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the worker is up (or died)
            if line.strip() != "ready":
                raise RuntimeError(f"a worker did not start (exit code {proc.poll()})")
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited early (exit code {proc.returncode})")


async def wait_until(
    done: Callable[[], Awaitable[bool]], limit: float, workers: Workers, every: float = 0.05
) -> None:
    deadline = time.monotonic() + limit
    while not await done():
        workers.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not finished after {limit:.0f}s")
        await asyncio.sleep(every)


async def run_main(peer: Peer, options: Options, best_procs: int) -> dict[str, Any]:
    procs = options.procs or best_procs
    result: dict[str, Any] = {
        "peer": peer.name,
        "version": peer.version,
        "python": sys.version.split()[0],
        "figure": options.figure,
        "jobs": options.jobs,
        "settings": peer.settings(),
    }
    await peer.open(options.dsn)
    try:
        if options.figure == "enqueue":
            await peer.enqueue_one()  # warm up: connections, prepared statements
            started = time.perf_counter()
            for _ in range(options.jobs):
                await peer.enqueue_one()
            elapsed = time.perf_counter() - started
            result.update(rate=options.jobs / elapsed, seconds=elapsed)
        elif options.figure == "drain":
            log(f"queueing {options.jobs} jobs")
            await peer.enqueue_bulk(options.jobs)
            log(f"draining with {procs} worker processes")
            started = time.perf_counter()
            with Workers(options, procs) as workers:

                async def drained() -> bool:
                    return await peer.unfinished() == 0

                await wait_until(drained, options.timeout, workers, every=0.1)
                wall = time.perf_counter() - started
            finished, seconds = await peer.drain_window()
            result.update(
                procs=procs,
                finished=finished,
                rate=finished / seconds if seconds > 0 else 0.0,
                window_seconds=seconds,
                wall_rate=options.jobs / wall,
            )
        else:
            with Workers(options, 1) as workers:
                await asyncio.sleep(1.0)  # let the worker settle into its idle wait
                for _ in range(options.jobs):
                    await peer.enqueue_one()
                    await asyncio.sleep(options.pause)

                async def drained() -> bool:
                    return await peer.unfinished() == 0

                await wait_until(drained, options.timeout, workers)
            latencies = await peer.start_latencies_ms()
            result.update(
                procs=1,
                count=len(latencies),
                p50_ms=percentile(latencies, 50),
                p99_ms=percentile(latencies, 99),
                samples_ms=latencies,
            )
    finally:
        await peer.close()
    return result


async def run_worker(peer: Peer, options: Options) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await peer.open(options.dsn)
    try:
        print("ready", flush=True)
        sys.stdout = sys.stderr  # nobody reads the pipe any more: never block on it
        await peer.work(stop)
    finally:
        await peer.close()


def main(make_peer: Callable[[Options], Peer], best_procs: int) -> None:
    options = parse()
    peer = make_peer(options)
    if options.role == "worker":
        asyncio.run(run_worker(peer, options))
        return
    result = asyncio.run(run_main(peer, options, best_procs))
    print(json.dumps(result), flush=True)
