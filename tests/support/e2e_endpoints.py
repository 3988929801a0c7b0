"""Endpoints for the end-to-end tests, loaded by real servers (`--endpoints`, see e2e.Server).

Handlers leave their side effects in files named by the request, so a test can see how many
times each one really ran, across process kills and restarts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jobstore import JobContext, endpoint


def _append(path: str, line: str) -> None:
    """Append one line and push it to disk: the process may be killed right after."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@endpoint("/record")
async def record(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Write `start ID ATTEMPT`, sleep `seconds`, write `end ID ATTEMPT`, answer the attempt."""
    _append(request["path"], f"start {ctx.job_id} {ctx.attempt}")
    await ctx.sleep(float(request.get("seconds", 0.5)))
    _append(request["path"], f"end {ctx.job_id} {ctx.attempt}")
    return {"job_id": ctx.job_id, "attempt": ctx.attempt}


@endpoint("/once", retryable=False)
async def once(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Never run twice: write `run ID ATTEMPT`, then sleep `seconds`."""
    _append(request["path"], f"run {ctx.job_id} {ctx.attempt}")
    await ctx.sleep(float(request.get("seconds", 0.5)))
    return {"ran": ctx.attempt}


@endpoint("/slow_first")
async def slow_first(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep `first` seconds on the first attempt and `later` seconds on every other one."""
    seconds = float(request.get("first", 30.0) if ctx.attempt == 1 else request.get("later", 0.2))
    await ctx.sleep(seconds)
    return {"attempt": ctx.attempt, "slept": seconds}


@endpoint("/e2e/add")
def add(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A plain (thread pool) handler: add two numbers, report progress on the way."""
    ctx.set_progress(50)
    time.sleep(0.05)
    return {"sum": request["a"] + request["b"], "job_id": ctx.job_id}


@endpoint("/limited", concurrency_limit=2)
async def limited(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """At most 2 jobs with one concurrency_key at once: write `start ID TIME` and `end ID TIME`
    (wall-clock seconds, comparable across processes) around a sleep of `seconds`."""
    _append(request["path"], f"start {ctx.job_id} {time.time():.6f}")
    await ctx.sleep(float(request.get("seconds", 0.3)))
    _append(request["path"], f"end {ctx.job_id} {time.time():.6f}")
    return {"job_id": ctx.job_id}
