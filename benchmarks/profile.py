"""Where a node's time goes under one of `make bench`'s loads: py-spy samples of every node
process, summed up by what the time was spent in.

    python benchmarks/profile.py [--targets create,roundtrip,drain] [--databases postgres,sqlite]
                                 [--seconds 15] [--processes 2] [--connections 64]

Each target starts the node as `make bench` does for that figure and drives the same load:

- `create`: a `serve` of --processes processes, wrk creating from --connections connections
  (the executors drain meanwhile);
- `roundtrip`: a one-process `serve`, one client creating a job and polling /get/job until it
  is DONE, one job at a time;
- `drain`: a `worker` of --processes processes (concurrency 256 each) on a queue of 200,000
  jobs.

While the load runs, `py-spy record` samples each node process (every thread, idle ones too)
for --seconds. The raw stacks go to benchmarks/results/profile-<target>-<db>-<time>.txt (the
collapsed format flame-graph tools read); the summary, printed and written beside them as
JSON, puts each sample of a process's event-loop thread in one bucket: the library whose code
was running (asyncpg, SQLAlchemy, uvicorn, jobstore's own packages ...), "asyncio loop" for the
loop's own bookkeeping, "idle" for a loop waiting in epoll with nothing to do; samples of other
threads (aiosqlite's, the writer turn's) are counted per thread, busy or waiting. Needs py-spy
(`make profile` installs it) and permission to trace the node (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jobstore_bench as jb

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 200  # per second and process: py-spy's default is 100

# The library a frame's file belongs to, by the first of these its path contains.
LIBRARIES = (
    ("/asyncpg/", "asyncpg"),
    ("/aiosqlite/", "aiosqlite"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/uvicorn/", "uvicorn"),
    ("/httptools/", "uvicorn"),
    ("/h11/", "uvicorn"),
    ("/starlette/", "starlette"),
    ("/jobstore/api/", "jobstore.api"),
    ("/jobstore/codecs/", "jobstore.codecs"),
    ("/jobstore/core/", "jobstore.core"),
    ("/jobstore/store/", "jobstore.store"),
    ("/jobstore/executor/", "jobstore.executor"),
    ("/jobstore/endpoints/", "jobstore.endpoints"),
    ("/jobstore/", "jobstore (other)"),
    ("/site-packages/", "other libraries"),
)
# Where the event loop waits for something to happen.
IDLE_LEAVES = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py")


def bucket(frames: list[str]) -> str:
    """The bucket of one event-loop sample; `frames` from the outermost to the leaf."""
    for frame in reversed(frames):
        for part, name in LIBRARIES:
            if part in frame:
                return name
        if frame.startswith("_run_once (") or frame.startswith("run_forever ("):
            # No library frame between the leaf and the loop: the loop's own work, or its wait.
            return "idle" if frames[-1].startswith(IDLE_LEAVES[:2]) else "asyncio loop"
    return "other"


def thread_waits(frames: list[str]) -> bool:
    """Whether a sample of a helper thread shows it waiting (a queue, a lock, flock)."""
    leaf = frames[-1] if frames else ""
    return leaf.startswith(("wait (threading.py", "get (queue.py", "_worker (concurrent", "take ("))


def summarize(raw: str) -> dict[str, Any]:
    """Shares of the samples in `raw` (py-spy's --format raw with --threads)."""
    loop: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        thread, *frames = stack.split(";")
        frames = [f.strip() for f in frames]
        if "MainThread" in thread or "main" in thread.split()[0]:
            name = bucket(frames)
            loop[name] += n
            if name not in ("idle", "asyncio loop") and frames:
                leaves[frames[-1]] += n
        else:
            label = thread.split("(")[0].strip().strip('"') or "thread"
            threads[f"{label}: {'waiting' if thread_waits(frames) else 'busy'}"] += n
    total = sum(loop.values()) or 1
    return {
        "loop_samples": sum(loop.values()),
        "loop_share": {k: round(v / total, 3) for k, v in loop.most_common()},
        "top_leaves": {k: round(v / total, 3) for k, v in leaves.most_common(15)},
        "other_threads_samples": dict(threads.most_common()),
    }


async def record(pids: list[int], seconds: float, out: Path) -> str:
    """py-spy of every process in `pids` for `seconds`; their raw stacks, concatenated."""
    files = [out.with_suffix(f".{pid}.raw") for pid in pids]
    spies = []
    for pid, path in zip(pids, files, strict=True):
        argv = ["py-spy", "record", "--pid", str(pid), "--duration", str(round(seconds))]
        argv += ["--rate", str(SAMPLE_RATE), "--format", "raw", "--threads", "--idle"]
        argv += ["--nonblocking", "--output", str(path)]
        spies.append(
            await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        )
    for spy in spies:
        _, err = await spy.communicate()
        if spy.returncode:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    text = "".join(path.read_text() for path in files)
    for path in files:
        path.unlink()
    return text


async def while_loaded(
    node: jb.Node, load: Callable[[], Coroutine[Any, Any, object]], seconds: float, out: Path
) -> str:
    """Run `load` and sample the node meanwhile (after a second of warm-up)."""
    task = asyncio.create_task(load())
    await asyncio.sleep(1.0)
    try:
        return await record(node.serving_pids(), seconds, out)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def profile_create(dialect: str, workdir: Path, args: argparse.Namespace, out: Path) -> str:
    async with (
        jb.scratch_database(dialect, workdir) as url,
        jb.Node(url, workdir, processes=args.processes) as node,
    ):
        await jb._wrk(node, args.connections, 1.0)
        load = lambda: jb._wrk(node, args.connections, args.seconds + 3)  # noqa: E731
        return await while_loaded(node, load, args.seconds, out)


async def profile_roundtrip(
    dialect: str, workdir: Path, args: argparse.Namespace, out: Path
) -> str:
    async with (
        jb.scratch_database(dialect, workdir) as url,
        jb.Node(url, workdir) as node,
        jb.Client(node) as client,
    ):

        async def trips() -> None:
            while True:
                job_id = await client.create()
                while await client.job_status(job_id=job_id) != "DONE":
                    pass

        return await while_loaded(node, trips, args.seconds, out)


async def profile_drain(dialect: str, workdir: Path, args: argparse.Namespace, out: Path) -> str:
    async with jb.scratch_database(dialect, workdir) as url:
        await jb.queue_echo_jobs(url, 200_000)
        worker_args = ["--concurrency", "256", "--migrate", "false"]
        async with jb.Node(
            url, workdir, command="worker", args=worker_args, processes=args.processes
        ) as node:
            return await while_loaded(node, lambda: asyncio.sleep(3600), args.seconds, out)


TARGETS = {"create": profile_create, "roundtrip": profile_roundtrip, "drain": profile_drain}


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n{title} ({summary['loop_samples']} event-loop samples)")
    for name, share in summary["loop_share"].items():
        print(f"  {name:<24}{share:>7.1%}")
    print("  busiest frames (leaf, share of the loop's samples):")
    for frame, share in list(summary["top_leaves"].items())[:8]:
        print(f"    {share:>6.1%}  {frame[:100]}")
    if summary["other_threads_samples"]:
        print(f"  other threads (samples): {summary['other_threads_samples']}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--targets", default="create,roundtrip,drain")
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--processes", type=int, default=2, help="create and drain")
    parser.add_argument("--connections", type=int, default=64, help="create")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: `make profile` installs it")
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}: choose from {sorted(TARGETS)}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    summaries: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            for dialect in args.databases.split(","):
                out = RESULTS / f"profile-{target}-{dialect}-{stamp}.txt"
                jb.log(f"{target} on {dialect}: {args.seconds:g} s of samples")
                raw = await TARGETS[target](dialect, Path(tmp), args, out)
                out.write_text(raw)
                summaries[f"{target}/{dialect}"] = summarize(raw)
                print_summary(f"{target}, {dialect}", summaries[f"{target}/{dialect}"])
    path = RESULTS / f"profile-{stamp}.json"
    path.write_text(json.dumps({"settings": vars(args), "summaries": summaries}, indent=2))
    print(f"\nwritten to {path} (raw stacks beside it)")


if __name__ == "__main__":
    asyncio.run(main())
