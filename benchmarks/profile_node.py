"""Where a node's time goes under one of `make bench`'s loads: py-spy samples of every node
process, summed up by what the time was spent in.

    python benchmarks/profile_node.py [--targets create,roundtrip,drain]
                                      [--databases postgres,sqlite] [--seconds 15]
                                      [--processes 2] [--connections 64]

Each target starts the node as `make bench` does for that figure and drives the same load:

- `create`: a `serve` of --processes processes, wrk creating from --connections connections
  (the executors drain meanwhile);
- `roundtrip`: a one-process `serve`, one client creating a job and polling /get/job until it
  is DONE, one job at a time;
- `drain`: a `worker` of --processes processes (concurrency 256 each) on a queue long enough
  to outlast the samples (30,000 jobs per second of them).

While the load runs, `py-spy record --native --idle` samples each node process (every thread,
asleep or not, with its C frames) for --seconds. The raw stacks go to
benchmarks/results/profile-<target>-<db>-<time>.txt (the collapsed format flame-graph tools
read); the summary, printed and written beside them as JSON, splits each process's event-loop
thread's time into idle (waiting in epoll), disk syncs, and the library whose code was
running (asyncpg, SQLAlchemy, uvicorn, jobstore's own packages ...; "event loop and C" for
uvloop's own work), lists the busiest Python frames, and says what the other threads
(aiosqlite's connection threads, the writer turn's) were doing: working, syncing to disk, or
waiting; and how many cores each program used meanwhile (the node, PostgreSQL, wrk, py-spy,
this script's own load). Native sampling pauses the process for each sample (100 a second),
so a profiled node runs a little slower than a measured one. Needs py-spy (`make profile`
installs it) and permission to trace the node (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jobstore_bench as jb

RESULTS = Path(__file__).resolve().parent / "results"
Profiled = tuple[str, dict[str, float]]  # raw stacks; cores used per program meanwhile
DRAIN_JOBS_PER_SECOND = 30_000  # queued per second of samples, for the drain target
SAMPLE_RATE = 100  # per second and process (each sample pauses the process: --native)

# The library a Python frame belongs to, by the first of these it contains (py-spy names a
# file by its path inside site-packages: "Cursor.execute (aiosqlite/cursor.py:40)").
LIBRARIES = (
    ("(asyncpg/", "asyncpg"),
    ("(aiosqlite/", "aiosqlite"),
    ("(sqlalchemy/", "SQLAlchemy"),
    ("(uvicorn/", "uvicorn"),
    ("(httptools/", "uvicorn"),
    ("(starlette/", "starlette"),
    ("(jobstore/api/", "jobstore.api"),
    ("(jobstore/codecs/", "jobstore.codecs"),
    ("(jobstore/core/", "jobstore.core"),
    ("(jobstore/store/", "jobstore.store"),
    ("(jobstore/executor/", "jobstore.executor"),
    ("(jobstore/endpoints/", "jobstore.endpoints"),
    ("(jobstore/domain/", "jobstore.domain"),
)  # jobstore/cli and __main__ are the frames every sample starts in: they are not counted
# Native frames (py-spy --native) say what a thread outside Python code was doing.
IDLE = ("epoll_wait (", "epoll_pwait (")  # an event loop with nothing to do
# A thread blocked on a lock or the GIL. "0x...": libc frames py-spy cannot name; in the
# samples read here they sat where the named waits do (aiosqlite's idle threads), so they are
# counted as waits, which may put a little libc work there too.
WAITING = ("pthread_cond_", "sem_wait", "sem_timedwait", "futex", "take_gil", "0x")
DISK_SYNC = ("fsync (", "fdatasync (")


def bucket(frames: list[str]) -> str:
    """The bucket of one sample of an event-loop thread; `frames` outermost first."""
    leaf = frames[-1] if frames else ""
    if leaf.startswith(IDLE):
        return "idle (epoll)"
    if leaf.startswith(DISK_SYNC):
        return "disk sync"
    for frame in reversed(frames):
        for part, name in LIBRARIES:
            if part in frame:
                return name
    if leaf.startswith(WAITING):
        return "waiting (GIL, lock)"
    return "event loop and C (uvloop, stdlib)"


def thread_state(frames: list[str]) -> str:
    """What one sample of a helper thread (aiosqlite's, the writer turn's) shows it doing."""
    leaf = frames[-1] if frames else ""
    if leaf.startswith(DISK_SYNC):
        return "disk sync"
    if leaf.startswith(WAITING) or leaf.startswith("flock ("):
        return "waiting"
    return "working"


def thread_kind(thread: str) -> str:
    """'thread (123): Thread-1 (_connection_worker_thread)' -> '_connection_worker_thread'."""
    name = thread.split(":", 1)[-1].strip()
    if "(" in name:
        return name[name.index("(") + 1 : name.rindex(")")]
    return name.rstrip("_0123456789")


def summarize(raw: str) -> dict[str, Any]:
    """Where the samples in `raw` (py-spy's --format raw with --threads --native --idle)
    went: each process's main thread (its event loop) split by what it was doing (idle in
    epoll, or the library whose code ran), and the other threads by kind and state."""
    loop: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = (part.strip() for part in stack.split(";"))
        if thread.endswith("MainThread"):
            name = bucket(frames)
            loop[name] += int(count)
            python = [f for f in frames if ".py:" in f]
            if name != "idle (epoll)" and python:
                leaves[f"{python[-1]}  [{name}]"] += int(count)
        else:
            threads[f"{thread_kind(thread)}: {thread_state(frames)}"] += int(count)
    total = sum(loop.values()) or 1
    return {
        "loop_samples": sum(loop.values()),
        "loop_share": {k: round(v / total, 3) for k, v in loop.most_common()},
        "top_python_frames": {k: round(v / total, 3) for k, v in leaves.most_common(15)},
        "threads_vs_loop_samples": {k: round(v / total, 3) for k, v in threads.most_common()},
    }


async def record(pids: list[int], seconds: float, out: Path) -> str:
    """py-spy of every process in `pids` for `seconds`; their raw stacks, concatenated."""
    files = [out.with_suffix(f".{pid}.raw") for pid in pids]
    spies = []
    for pid, path in zip(pids, files, strict=True):
        argv = ["py-spy", "record", "--pid", str(pid), "--duration", str(round(seconds))]
        argv += ["--rate", str(SAMPLE_RATE), "--format", "raw", "--threads", "--native"]
        argv += ["--idle", "--output", str(path)]
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


def cpu_seconds(node_pids: list[int]) -> collections.defaultdict[str, float]:
    """CPU time (user + system) used so far by every process on the machine, by program:
    the node's processes, PostgreSQL's, wrk, py-spy, this script, and the rest."""
    tick = os.sysconf("SC_CLK_TCK")
    used: collections.defaultdict[str, float] = collections.defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        pid, comm = int(text.split(" ", 1)[0]), text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if pid in node_pids:
            program = "node"
        elif pid == os.getpid():
            program = "load (this script)"
        elif comm.startswith(("postgres", "postmaster")):
            program = "postgres"
        elif comm in ("wrk", "py-spy"):
            program = comm
        else:
            program = "other"
        used[program] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


async def while_loaded(
    node: jb.Node, load: Callable[[], Coroutine[Any, Any, object]], seconds: float, out: Path
) -> tuple[str, dict[str, float]]:
    """Run `load` and sample the node meanwhile (after a second of warm-up); the stacks, and
    the cores each program used meanwhile (1.0: one core all the time)."""
    task = asyncio.create_task(load())
    await asyncio.sleep(1.0)
    try:
        pids = node.serving_pids()
        before, started = cpu_seconds(pids), time.monotonic()
        spies = asyncio.create_task(record(pids, seconds, out))
        await asyncio.sleep(seconds - 0.5)  # read while py-spy runs: an exited one is not in /proc
        after, elapsed = cpu_seconds(pids), time.monotonic() - started
        raw = await spies
        cores = {k: round((after[k] - before[k]) / elapsed, 2) for k in after}
        return raw, dict(sorted(cores.items(), key=lambda kv: -kv[1]))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def profile_create(
    dialect: str, workdir: Path, args: argparse.Namespace, out: Path
) -> Profiled:
    async with (
        jb.scratch_database(dialect, workdir) as url,
        jb.Node(url, workdir, processes=args.processes) as node,
    ):
        await jb._wrk(node, args.connections, 1.0)
        load = lambda: jb._wrk(node, args.connections, args.seconds + 3)  # noqa: E731
        return await while_loaded(node, load, args.seconds, out)


async def profile_roundtrip(
    dialect: str, workdir: Path, args: argparse.Namespace, out: Path
) -> Profiled:
    async with (
        jb.scratch_database(dialect, workdir) as url,
        jb.Node(url, workdir) as node,
        jb.Client(node) as client,
    ):

        async def trips() -> None:
            while True:
                await client.until_done(await client.create())

        return await while_loaded(node, trips, args.seconds, out)


async def profile_drain(
    dialect: str, workdir: Path, args: argparse.Namespace, out: Path
) -> Profiled:
    async with jb.scratch_database(dialect, workdir) as url:
        # Enough that the drain outlasts the samples (it runs at about 20,000 jobs/s here).
        await jb.queue_echo_jobs(url, DRAIN_JOBS_PER_SECOND * round(args.seconds + 5))
        worker_args = ["--concurrency", "256", "--migrate", "false"]
        async with jb.Node(
            url, workdir, command="worker", args=worker_args, processes=args.processes
        ) as node:
            profiled = await while_loaded(node, lambda: asyncio.sleep(3600), args.seconds, out)
            if await jb.unfinished(url) == 0:
                raise RuntimeError("the drain ended before the samples did: queue more jobs")
            return profiled


TARGETS = {"create": profile_create, "roundtrip": profile_roundtrip, "drain": profile_drain}


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n{title}: the event loops' time ({summary['loop_samples']} samples)")
    for name, share in summary["loop_share"].items():
        print(f"  {name:<34}{share:>7.1%}")
    print("  busiest Python frames (innermost; share of the loops' time):")
    for frame, share in list(summary["top_python_frames"].items())[:10]:
        print(f"    {share:>6.1%}  {frame[:110]}")
    print("  other threads (time, in units of one thread's):")
    for kind, share in summary["threads_vs_loop_samples"].items():
        print(f"    {share:>6.1%}  {kind}")
    used = ", ".join(f"{k} {v:.2f}" for k, v in summary.get("cores_used", {}).items() if v)
    print(f"  cores used meanwhile: {used}")


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
                raw, cores = await TARGETS[target](dialect, Path(tmp), args, out)
                out.write_text(raw)
                summaries[f"{target}/{dialect}"] = {**summarize(raw), "cores_used": cores}
                print_summary(f"{target}, {dialect}", summaries[f"{target}/{dialect}"])
    path = RESULTS / f"profile-{stamp}.json"
    path.write_text(json.dumps({"settings": vars(args), "summaries": summaries}, indent=2))
    print(f"\nwritten to {path} (raw stacks beside it)")


if __name__ == "__main__":
    asyncio.run(main())
