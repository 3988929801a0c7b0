"""Endpoints for the chaos test (tests/chaos, docs/chaos.md), loaded by real nodes with
`--endpoints tests.support.chaos_endpoints`.

Every handler appends what it does to a ledger: one JSON object per line, in the file named by
the CHAOS_LEDGER variable, with the node id from CHAOS_NODE_ID. The file is opened O_APPEND and
each event is one write(): once write() has returned, a kill -9 of the process cannot take the
line back (it is in the kernel's page cache), so the ledger holds every event of every run that
reached it, across kills and restarts. Events:

    start   the handler began an attempt
    finish  the handler is about to return its answer (the run may still be lost before the
            outcome is recorded)
    fail    the handler is about to raise JobFailed (the flaky endpoint's planned failures)
    stop    the handler was stopped: a timeout, a lost lease, a stopping node (`timed_out`)

Each event carries `job`, `tag`, `endpoint`, `attempt`, `node`, `pid` and `t` (time.time()).

`new_create` makes the creates of the load: which endpoint, payload and options; the chaos
harness (tests/support/chaos.py) sends them and checks how each kind of job must end.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobstore import JobContext, JobFailed, endpoint

LEDGER_VARIABLE = "CHAOS_LEDGER"
NODE_VARIABLE = "CHAOS_NODE_ID"
SCHEDULE_NAME = "chaos-tick"
FLAKY_BACKOFF_SECONDS = 2.0
SLOW_TIMEOUT_SECONDS = 1.0

# kind -> (endpoint, weight in the load); the schedule's jobs are kind "tick"
KINDS: dict[str, tuple[str, int]] = {
    "sleep": ("/chaos/sleep", 5),
    "once": ("/chaos/once", 2),
    "flaky": ("/chaos/flaky", 2),
    "slow": ("/chaos/slow", 1),
}

ENDPOINT_KINDS = {endpoint: kind for kind, (endpoint, _) in KINDS.items()} | {"/chaos/tick": "tick"}
LOST = ("lost", "given_back")  # attempt outcomes of a run whose node was lost or stopped


def ends_as_it_must(
    kind: str, status: str, last: str | None, message: str, timeout: float | None
) -> bool:
    """Whether a job of `kind` ended as it must, given its last attempt's outcome: sleep,
    flaky and tick jobs `done` (they have attempts enough); once jobs `done`, or `error` when
    their run was lost; slow jobs `error`, timed out (as docs/endpoints.md words it) or lost."""
    if kind in ("sleep", "flaky", "tick"):
        return status == "done"
    if kind == "once":
        return status == "done" or (status == "error" and last in LOST)
    timed_out = last == "timeout" and message == f"timed out after {timeout or 0:g} s"
    return kind == "slow" and status == "error" and (last in LOST or timed_out)


@dataclass(frozen=True)
class Create:
    """One create of the load; re-sent as it is (same tag, same payload) until answered."""

    n: int  # unique in a run: a job stored twice shows as two rows with one `n`
    kind: str
    payload: dict[str, Any]
    options: dict[str, Any]  # typed, as REST takes them; Kinetica gets them as strings

    @property
    def tag(self) -> str:
        return f"chaos-{self.kind}-{self.n}"

    @property
    def endpoint(self) -> str:
        return KINDS[self.kind][0]

    def rest_body(self) -> dict[str, Any]:
        """For POST /api/v1/jobs."""
        return {"endpoint": self.endpoint, "payload": self.payload, "tag": self.tag, **self.options}

    def kinetica_body(self) -> dict[str, Any]:
        """For Kinetica's POST /create/job, JSON-encoded: the same JSON, options as strings."""
        options = {k: str(v).lower() for k, v in self.options.items()}
        return {
            "endpoint": self.endpoint,
            "request_encoding": "json",
            "data": "",
            "data_str": json.dumps(self.payload),
            "options": {"job_tag": self.tag, **options},
        }


def new_create(n: int, rng: random.Random) -> Create:
    """A create of a random kind: sleep and once jobs of 0.1-1.5 s (sleep jobs may be run 10
    times), flaky jobs that fail twice, slow jobs that time out (half of them retried once)."""
    kinds = list(KINDS)
    kind = rng.choices(kinds, weights=[KINDS[k][1] for k in kinds])[0]
    payload: dict[str, Any] = {"kind": kind, "n": n}
    options: dict[str, Any] = {}
    if kind in ("sleep", "once"):
        payload["seconds"] = round(rng.uniform(0.1, 1.5), 3)
        if kind == "sleep":
            options["max_attempts"] = 10
    elif kind == "flaky":
        payload.update(seconds=0.1, fail=2)
    else:  # slow: far past its timeout
        payload["seconds"] = 30
        if rng.random() < 0.5:
            options.update(retry_errors=True, max_attempts=2)
    return Create(n, kind, payload, options)


_lock = threading.Lock()
_fd: int | None = None


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's events, in order; a line that does not parse is {"event": "torn"}."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": "torn", "line": line[:200]})
    return events


def _ledger() -> int:
    global _fd
    with _lock:
        if _fd is None:
            _fd = os.open(
                os.environ[LEDGER_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )
        return _fd


def record(event: str, ctx: JobContext, **extra: Any) -> None:
    """Append one event of this attempt to the ledger, in one write()."""
    line = {
        "event": event,
        "job": ctx.job_id,
        "tag": ctx.job_tag,
        "endpoint": ctx.endpoint,
        "attempt": ctx.attempt,
        "node": os.environ.get(NODE_VARIABLE, "?"),
        "pid": os.getpid(),
        "t": time.time(),
        **extra,
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    written = os.write(_ledger(), data)
    assert written == len(data), f"short ledger write: {written} of {len(data)} bytes"


def _answer(ctx: JobContext) -> dict[str, Any]:
    """What every handler returns: which run produced the stored result."""
    return {
        "job_id": ctx.job_id,
        "attempt": ctx.attempt,
        "node": os.environ.get(NODE_VARIABLE, "?"),
        "pid": os.getpid(),
    }


async def _run(request: dict[str, Any], ctx: JobContext, *, fail_until: int = 0) -> dict[str, Any]:
    """start, sleep `seconds`, then fail (attempts up to `fail_until`) or finish."""
    record("start", ctx)
    try:
        await ctx.sleep(float(request.get("seconds", 0.5)))
    except BaseException:  # JobCancelled, or CancelledError at the await: a stop, not a kill
        record("stop", ctx, timed_out=ctx.timed_out)
        raise
    if ctx.attempt <= fail_until:
        record("fail", ctx)
        raise JobFailed(f"planned failure of attempt {ctx.attempt} (fails until {fail_until})")
    record("finish", ctx)
    return _answer(ctx)


@endpoint("/chaos/sleep")
async def chaos_sleep(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Retryable: sleep `seconds`; a run lost with its node runs again."""
    return await _run(request, ctx)


@endpoint("/chaos/once", retryable=False)
async def chaos_once(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Not retryable: never started twice; a run lost with its node ends the job `error`."""
    return await _run(request, ctx)


@endpoint("/chaos/flaky", retry_errors=True, max_attempts=10, backoff_seconds=FLAKY_BACKOFF_SECONDS)
async def chaos_flaky(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Fails its first `fail` attempts (JobFailed), so it ends `done` after retries."""
    return await _run(request, ctx, fail_until=int(request.get("fail", 2)))


@endpoint("/chaos/slow", timeout_seconds=SLOW_TIMEOUT_SECONDS)
async def chaos_slow(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleeps `seconds` (far more than its timeout): every attempt ends `timeout`."""
    return await _run(request, ctx)


@endpoint(
    "/chaos/tick",
    max_attempts=10,
    schedule={"name": SCHEDULE_NAME, "every_seconds": 1, "payload": {"kind": "tick"}},
)
def chaos_tick(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A blocking handler fired by a schedule every second: one job per fire time."""
    record("start", ctx)
    time.sleep(0.05)
    record("finish", ctx)
    return _answer(ctx)
