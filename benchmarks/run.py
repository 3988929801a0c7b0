"""`make bench`: jobstore against pgqueuer, procrastinate and oban, on one machine, in one run.

    python benchmarks/run.py [--quick] [--runs 3] [--databases postgres,sqlite]
                             [--only jobstore|peers] [--peers pgqueuer,procrastinate,oban]
                             [--figures create,drain,latency,roundtrip,lookup]
                             [--lookup-rows 10000,1000000] [--drain-concurrency 256] ...

PostgreSQL comes from JOBSTORE_BENCH_POSTGRES_URL (an admin URL; default the local server at
127.0.0.1:5432, user postgres); every measurement gets a scratch database of its own, dropped
afterwards. Each peer runs from its own virtual environment under benchmarks/.venvs/, which
this script creates and fills from the package index on first use (pinned versions below).
Prints one table on stdout (progress goes to stderr) and writes everything it measured to
benchmarks/results/bench-<timestamp>.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jobstore_bench as jb

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
DATABASES = ("postgres", "sqlite")
FIGURES = ("create", "drain", "latency", "roundtrip", "lookup")


@dataclass(frozen=True)
class PeerSpec:
    name: str
    packages: tuple[str, ...]
    min_python: tuple[int, int]
    setting: str  # its best setting on two cores, as run by peers/<name>_bench.py


PEERS = {
    p.name: p
    for p in (
        PeerSpec(
            "pgqueuer",
            ("pgqueuer==1.6.0", "asyncpg>=0.29,<1"),
            (3, 10),
            "2 worker processes, batch_size 100",
        ),
        PeerSpec(
            "procrastinate",
            ("procrastinate==3.10.0", "psycopg[binary,pool]>=3.1,<4"),
            (3, 10),
            "2 worker processes, concurrency 4 each, LISTEN/NOTIFY",
        ),
        PeerSpec("oban", ("oban==0.7.0",), (3, 12), "2 worker processes, queue limit 200"),
    )
}


# -- settings ------------------------------------------------------------------------------

FULL = {
    "runs": 3,
    "create_seconds": 5.0,
    "drain_jobs": 50_000,
    "procrastinate_drain_jobs": 10_000,
    "enqueue_jobs": 2_000,
    "latency_jobs": 200,
    "round_trips": 200,
    "lookup_rows": "10000,1000000",
    "lookups": 2_000,
}
QUICK = {
    "runs": 1,
    "create_seconds": 2.0,
    "drain_jobs": 5_000,
    "procrastinate_drain_jobs": 1_000,
    "enqueue_jobs": 500,
    "latency_jobs": 50,
    "round_trips": 50,
    "lookup_rows": "10000,100000",
    "lookups": 500,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer jobs and one run: a smoke test")
    parser.add_argument("--databases", default="postgres,sqlite", help="postgres, sqlite or both")
    parser.add_argument("--only", choices=("all", "jobstore", "peers"), default="all")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated, or 'none'")
    parser.add_argument("--figures", default=",".join(FIGURES), help="comma-separated subset")
    parser.add_argument("--connections", default="16,64", help="HTTP create: client connections")
    parser.add_argument("--drain-concurrency", type=int, default=256, help="jobstore worker")
    parser.add_argument(
        "--processes", default="1,2", help="HTTP create and drain: jobstore --processes settings"
    )
    parser.add_argument("--latency-pause", type=float, default=0.02, help="seconds between jobs")
    for name, value in FULL.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag, type=type(value), default=None, help=f"default {value}, --quick {QUICK[name]}"
        )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.databases = [_dialect(d) for d in _csv(args.databases)]
    args.peers = [] if args.peers.strip() in ("", "none") else _csv(args.peers)
    args.figures = _csv(args.figures)
    args.connections = [int(c) for c in _csv(args.connections)]
    args.processes = sorted(int(p) for p in _csv(args.processes))
    args.lookup_rows = sorted(int(r) for r in _csv(args.lookup_rows))
    for peer in args.peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}: choose from {', '.join(PEERS)}")
    for figure in args.figures:
        if figure not in FIGURES:
            parser.error(f"unknown figure {figure!r}: choose from {', '.join(FIGURES)}")
    if args.only == "jobstore":
        args.peers = []
    return args


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _dialect(name: str) -> str:
    lowered = name.lower()
    if lowered in ("postgres", "postgresql", "pg"):
        return "postgres"
    if lowered == "sqlite":
        return "sqlite"
    raise SystemExit(f"unknown database {name!r}: use postgres or sqlite")


# -- results -------------------------------------------------------------------------------


class Results:
    """Every figure as {key: {"jobstore": summary, "peers": {name: summary}}}, plus notes."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def figure(self, key: str) -> dict[str, Any]:
        return self.figures.setdefault(key, {"jobstore": None, "peers": {}})

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            jb.log(f"NOTE: {text}")


async def repeat(
    runs: int, what: str, measure: Callable[[], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    raw = []
    for run in range(runs):
        jb.log(f"  {what}, run {run + 1}/{runs}")
        raw.append(await measure())
    return raw


def summarize(raw: list[dict[str, Any]], field: str) -> dict[str, Any]:
    return {**jb.summary([r[field] for r in raw]), "raw": raw}


def with_processes(key: str, processes: int) -> str:
    """The figure key of a node of `processes` processes ("create64/postgres" for one)."""
    if processes == 1:
        return key
    name, database = key.split("/")
    return f"{name}x{processes}/{database}"


def failure(exc: BaseException) -> dict[str, Any]:
    text = f"{type(exc).__name__}: {exc}".strip()
    return {"error": text.splitlines()[0][:300], "detail": text[-3000:]}


# -- peers ---------------------------------------------------------------------------------


def find_python(minimum: tuple[int, int]) -> str | None:
    """An interpreter at least `minimum`: this one, pythonX.Y on PATH, or a pyenv version."""
    if sys.version_info[:2] >= minimum:
        return sys.executable
    candidates = [f"python3.{minor}" for minor in range(20, minimum[1] - 1, -1)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        (str(p) for p in pyenv_root.glob("versions/3.*/bin/python3")), reverse=True
    )
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if path is None:
            continue
        try:
            out = subprocess.run(
                [path, "-c", "import sys; print(*sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and tuple(int(x) for x in out.stdout.split()) >= minimum:
            return path
    return None


def prepare_peer(spec: PeerSpec) -> Path:
    """The peer's virtual environment (created and installed once); raises with the reason."""
    venv = VENVS / spec.name
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    wanted = "\n".join(spec.packages)
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return python
    base = find_python(spec.min_python)
    if base is None:
        need = ".".join(map(str, spec.min_python))
        raise RuntimeError(f"needs Python {need}+ and none was found (PATH, pyenv)")
    jb.log(f"  installing {', '.join(spec.packages)} into {venv.relative_to(BENCH.parent)}")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *spec.packages],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(step[:4])} failed: {' | '.join(tail)}")
    marker.write_text(wanted)
    return python


async def run_peer(
    python: Path, peer: str, figure: str, jobs: int, workdir: Path, extra: list[str]
) -> dict[str, Any]:
    """One figure of one peer on a scratch database: the JSON its script printed."""
    timeout = 120 + jobs / 50
    async with jb.scratch_database("postgres", workdir) as url:
        log_path = workdir / f"{peer}-{figure}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("wb") as errors:
            proc = await asyncio.create_subprocess_exec(
                str(python), str(BENCH / "peers" / f"{peer}_bench.py"), "--dsn", url,
                "--figure", figure, "--jobs", str(jobs), "--timeout", str(timeout), *extra,
                stdout=asyncio.subprocess.PIPE, stderr=errors, start_new_session=True,
            )  # fmt: skip
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout + 60)
            except TimeoutError:
                os.killpg(proc.pid, 9)
                await proc.wait()
                raise RuntimeError(f"no answer after {timeout + 60:.0f}s") from None
        lines = out.decode().strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"exit code {proc.returncode}: {' | '.join(tail)}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result


# -- the run -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results = Results()
        self.peer_python: dict[str, Path] = {}
        self.jobstore = args.only in ("all", "jobstore")

    async def setup(self) -> None:
        why = await jb.pg_available()
        if why is not None:
            if "postgres" in self.args.databases:
                self.args.databases.remove("postgres")
            if self.args.peers:
                self.args.peers = []
            self.results.note(f"PostgreSQL not reachable ({why}): PostgreSQL and peers skipped")
        if not jb.have_wrk():
            self.results.note(
                "wrk is not installed (apt-get install wrk): HTTP create uses httpx, which "
                "itself caps the figure at a few hundred per second"
            )
        for peer in self.args.peers:
            spec = PEERS[peer]
            try:
                self.peer_python[peer] = await asyncio.to_thread(prepare_peer, spec)
            except Exception as exc:
                self.results.note(f"{peer} skipped: {exc}")
                for key in self._peer_keys():
                    self.results.figure(key)["peers"][peer] = {"skipped": str(exc)}

    def _peer_keys(self) -> list[str]:
        keys = []
        if "create" in self.args.figures:
            keys += [f"create{c}/postgres" for c in self.args.connections]
        if "drain" in self.args.figures:
            keys.append("drain/postgres")
        if "latency" in self.args.figures:
            keys += ["start_p50/postgres", "start_p99/postgres"]
        return keys

    async def measure_jobstore(
        self, key: str, what: str, measure: Callable[[], Awaitable[dict[str, Any]]], field: str
    ) -> list[dict[str, Any]] | None:
        try:
            raw = await repeat(self.args.runs, what, measure)
        except Exception as exc:
            self.results.figure(key)["jobstore"] = failure(exc)
            self.results.note(f"jobstore {what} failed: {failure(exc)['error']}")
            return None
        self.results.figure(key)["jobstore"] = summarize(raw, field)
        return raw

    async def measure_peers(
        self, keys: dict[str, str], figure: str, jobs: Callable[[str], int], extra: list[str]
    ) -> None:
        """keys: figure key -> field of the peer's JSON to summarize."""
        for peer, python in self.peer_python.items():
            n = jobs(peer)

            def measure(p: str = peer, py: Path = python, n: int = n) -> Awaitable[dict[str, Any]]:
                return run_peer(py, p, figure, n, self.workdir, extra)

            try:
                raw = await repeat(self.args.runs, f"{peer} {figure} ({n} jobs)", measure)
            except Exception as exc:
                self.results.note(f"{peer} {figure} failed: {failure(exc)['error']}")
                for key in keys:
                    self.results.figure(key)["peers"][peer] = failure(exc)
                continue
            for key, field in keys.items():
                self.results.figure(key)["peers"][peer] = summarize(raw, field)

    async def create(self) -> None:
        jb.log("HTTP create rate (and node memory)")
        if self.jobstore:
            for dialect in self.args.databases:
                for conns, procs in itertools.product(self.args.connections, self.args.processes):

                    def measure(
                        d: str = dialect, c: int = conns, p: int = procs
                    ) -> Awaitable[dict[str, Any]]:
                        return jb.create_rate(d, self.workdir, c, self.args.create_seconds, p)

                    raw = await self.measure_jobstore(
                        with_processes(f"create{conns}/{dialect}", procs),
                        f"{dialect} create, {conns} connections, {procs} process(es)",
                        measure,
                        "rate",
                    )
                    if raw is not None:
                        rss = self.results.figure(with_processes(f"rss{conns}/{dialect}", procs))
                        rss["jobstore"] = summarize(raw, "peak_rss_mb")
        if "postgres" in self.args.databases:
            keys = {f"create{c}/postgres": "rate" for c in self.args.connections}
            await self.measure_peers(keys, "enqueue", lambda _p: self.args.enqueue_jobs, [])

    async def drain(self) -> None:
        jb.log(f"drain of {self.args.drain_jobs} queued jobs")
        if self.jobstore:
            for dialect, procs in itertools.product(self.args.databases, self.args.processes):

                def measure(d: str = dialect, p: int = procs) -> Awaitable[dict[str, Any]]:
                    return jb.drain(
                        d, self.workdir, self.args.drain_jobs, self.args.drain_concurrency, p
                    )

                await self.measure_jobstore(
                    with_processes(f"drain/{dialect}", procs),
                    f"{dialect} drain, {procs} process(es)",
                    measure,
                    "rate",
                )
        if "postgres" in self.args.databases:

            def jobs(peer: str) -> int:
                if peer == "procrastinate":
                    return int(min(self.args.drain_jobs, self.args.procrastinate_drain_jobs))
                return int(self.args.drain_jobs)

            await self.measure_peers({"drain/postgres": "rate"}, "drain", jobs, [])

    async def latency(self) -> None:
        jb.log(f"idle start latency, {self.args.latency_jobs} jobs one at a time")
        pause = self.args.latency_pause
        if self.jobstore:
            for dialect in self.args.databases:

                def measure(d: str = dialect) -> Awaitable[dict[str, Any]]:
                    return jb.idle_start_latency(d, self.workdir, self.args.latency_jobs, pause)

                raw = await self.measure_jobstore(
                    f"start_p50/{dialect}", f"{dialect} idle start latency", measure, "p50_ms"
                )
                if raw is not None:
                    self.results.figure(f"start_p99/{dialect}")["jobstore"] = summarize(
                        raw, "p99_ms"
                    )
        if "postgres" in self.args.databases:
            keys = {"start_p50/postgres": "p50_ms", "start_p99/postgres": "p99_ms"}
            extra = ["--pause", str(pause)]
            await self.measure_peers(keys, "latency", lambda _p: self.args.latency_jobs, extra)

    async def roundtrip(self) -> None:
        if not self.jobstore:
            return
        jb.log(f"round trip, {self.args.round_trips} jobs one at a time")
        for dialect in self.args.databases:

            def measure(d: str = dialect) -> Awaitable[dict[str, Any]]:
                return jb.round_trip(d, self.workdir, self.args.round_trips)

            raw = await self.measure_jobstore(
                f"rt_p50/{dialect}", f"{dialect} round trip", measure, "p50_ms"
            )
            if raw is not None:
                self.results.figure(f"rt_p99/{dialect}")["jobstore"] = summarize(raw, "p99_ms")

            def measure_waiting(d: str = dialect) -> Awaitable[dict[str, Any]]:
                return jb.round_trip(d, self.workdir, self.args.round_trips, long_poll=True)

            await self.measure_jobstore(
                f"rt_wait_p50/{dialect}", f"{dialect} round trip, long poll", measure_waiting,
                "p50_ms",
            )  # fmt: skip

    async def lookup(self) -> None:
        if not self.jobstore:
            return
        jb.log(f"/get/job lookups at {', '.join(f'{r:,}' for r in self.args.lookup_rows)} rows")
        for dialect in self.args.databases:
            jb.log(f"  {dialect}")
            found: dict[int, dict[str, Any]] = {}
            try:
                await jb.lookups(
                    dialect,
                    self.workdir,
                    self.args.lookup_rows,
                    self.args.lookups,
                    self.args.runs,
                    found,
                )
            except Exception as exc:
                self.results.note(f"jobstore {dialect} lookup failed: {failure(exc)['error']}")
                for rows in self.args.lookup_rows:
                    if rows not in found:
                        key = f"lookup_p99@{rows}/{dialect}"
                        self.results.figure(key)["jobstore"] = failure(exc)
            for rows, figures in found.items():
                for p in ("p50", "p99"):
                    self.results.figure(f"lookup_{p}@{rows}/{dialect}")["jobstore"] = figures[
                        f"{p}_ms"
                    ]

    async def run(self) -> None:
        await self.setup()
        for figure in FIGURES:
            if figure in self.args.figures:
                await getattr(self, figure)()


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""
    check: Callable[[Results, float], bool | None] | None = None  # judged on the median
    group: str = ""  # rows of one figure at several --processes (met when any one is); "": key


def _median(results: Results, key: str, peer: str | None = None) -> float | None:
    fig = results.figures.get(key)
    if fig is None:
        return None
    entry = fig["jobstore"] if peer is None else fig["peers"].get(peer)
    if not entry or "median" not in entry:
        return None
    return float(entry["median"])


Check = Callable[[Results, float], bool | None]


def _at_most(limit: float) -> Check:
    return lambda _r, v: v <= limit


def _at_least(floor: float) -> Check:
    return lambda _r, v: v >= floor


def _times_peer(key: str, peer: str, times: float, *, higher_is_better: bool) -> Check:
    """Within `times` of the peer's median of `key` (None when the peer has none)."""

    def check(r: Results, v: float) -> bool | None:
        theirs = _median(r, key, peer)
        if theirs is None:
            return None
        return v >= times * theirs if higher_is_better else v <= times * theirs

    return check


def _lookup_check(base_key: str) -> Check:
    def check(r: Results, v: float) -> bool | None:
        base = _median(r, base_key)
        return None if base is None else v <= 1.5 * base

    return check


# Issue 17's targets for HTTP create, by connections. Create and drain targets are judged on
# every --processes setting, and one is met when jobstore's best setting meets it.
CREATE_TARGETS = {64: 6000, 16: 3500}


def table_rows(args: argparse.Namespace) -> list[Row]:
    """The table's rows, in order, with the targets of the performance issue."""
    rows: list[Row] = []
    top = max(args.connections) if args.connections else 64
    smallest, largest = (args.lookup_rows[0], args.lookup_rows[-1]) if args.lookup_rows else (0, 0)

    def procs(p: int) -> str:
        return f", {p} procs" if p > 1 else ""

    for d in args.databases:
        for c, p in itertools.product(args.connections, args.processes):
            key, label = with_processes(f"create{c}/{d}", p), f"HTTP create, {c} conns{procs(p)}"
            floor = CREATE_TARGETS.get(c)
            if floor is None:
                rows.append(Row(key, label, "jobs/s", True))
            else:
                check = _at_least(floor)
                rows.append(Row(key, label, "jobs/s", True, f">= {floor}", check, f"create{c}/{d}"))
    for d, p in itertools.product(args.databases, args.processes):
        key = with_processes(f"drain/{d}", p)
        check = _times_peer("drain/postgres", "pgqueuer", 1.2, higher_is_better=True)
        label, target = f"drain{procs(p)}", ">= 1.2x pgq (PG)"
        rows.append(Row(key, label, "jobs/s", True, target, check, f"drain/{d}"))
    for d in args.databases:
        check = _times_peer("start_p50/postgres", "pgqueuer", 1.0, higher_is_better=False)
        rows.append(Row(f"start_p50/{d}", "idle start p50", "ms", False, "<= pgq (PG)", check))
        rows.append(Row(f"start_p99/{d}", "idle start p99", "ms", False))
    for d in args.databases:
        rows.append(Row(f"rt_p50/{d}", "round trip p50", "ms", False, "<= 3 ms", _at_most(3)))
        rows.append(Row(f"rt_p99/{d}", "round trip p99", "ms", False))
        rows.append(Row(f"rt_wait_p50/{d}", "round trip p50, long poll", "ms", False))
    for d in args.databases:
        for n in args.lookup_rows:
            rows.append(Row(f"lookup_p50@{n}/{d}", f"/get/job p50, {_rows(n)}", "ms", False))
            key, label = f"lookup_p99@{n}/{d}", f"/get/job p99, {_rows(n)}"
            if n == largest and largest > smallest:
                target = f"<= 1.5x {_rows(smallest)}"
                check = _lookup_check(f"lookup_p99@{smallest}/{d}")
                rows.append(Row(key, label, "ms", False, target, check))
            else:
                rows.append(Row(key, label, "ms", False))
    for d, p in itertools.product(args.databases, args.processes):
        label = f"peak RSS per process, {top} conns{procs(p)}"
        key = with_processes(f"rss{top}/{d}", p)
        rows.append(Row(key, label, "MB", False, "<= 150 MB (max)", _at_most(150)))
    return rows


def _rows(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M rows"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k rows"
    return f"{n} rows"


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_table(results: Results, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    peers = [p for p in PEERS if p in args.peers]
    short = {"pgqueuer": "pgq", "procrastinate": "proc", "oban": "oban"}
    header = ["figure", "db", "unit", "jobstore median [min-max]", *peers]
    header += [f"js/{short[p]}" for p in peers] + ["target", "met?"]
    lines: list[list[str]] = []
    verdicts: list[dict[str, Any]] = []
    for row in table_rows(args):
        fig = results.figures.get(row.key)
        if fig is None:
            continue
        database = row.key.split("/")[1]
        js = fig["jobstore"]
        if js and "median" in js:
            cell = f"{_num(js['median'])} [{_num(js['min'])}-{_num(js['max'])}]"
        elif js and "error" in js:
            cell = "failed (see notes)"
        else:
            cell = "-"
        peer_cells, ratio_cells = [], []
        for peer in peers:
            entry = fig["peers"].get(peer)
            value = _median(results, row.key, peer)
            if value is not None:
                peer_cells.append(_num(value))
            elif entry and "skipped" in entry:
                peer_cells.append("skipped")
            elif entry and "error" in entry:
                peer_cells.append("failed")
            else:
                peer_cells.append("-")
            mine = _median(results, row.key)
            ratio_cells.append(f"{mine / value:.2f}x" if mine is not None and value else "-")
        met = ""
        if row.check is not None and js and "median" in js:
            value = js["max"] if row.key.startswith("rss") else js["median"]
            verdict = row.check(results, value)
            met = "-" if verdict is None else ("yes" if verdict else "NO")
            group = row.group or row.key
            verdicts.append(
                {"figure": row.key, "group": group, "target": row.target, "met": verdict}
            )
        direction = "" if row.higher_is_better else " (lower better)"
        first = [row.label, database, row.unit + direction, cell]
        lines.append([*first, *peer_cells, *ratio_cells, row.target, met])
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in lines)]
    return "\n".join(out), verdicts


def unmet_targets(verdicts: list[dict[str, Any]]) -> list[str]:
    """The figures (any --processes) whose target no setting of jobstore met."""
    judged: dict[str, list[bool | None]] = {}
    for v in verdicts:
        judged.setdefault(v["group"], []).append(v["met"])
    return [g for g, met in judged.items() if False in met and True not in met]


def describe(args: argparse.Namespace) -> list[str]:
    lines = [
        f"runs per figure: {args.runs}; median [min-max] over runs; peers on PostgreSQL only",
        f"jobstore: 1 node, default settings (serve); drain by 1 `jobstore worker "
        f"--concurrency {args.drain_concurrency}` (per process); HTTP create "
        f"{args.create_seconds:g}s of wrk per run (after 1s warm-up), executor draining "
        f"meanwhile; both with --processes {', '.join(map(str, args.processes))}",
        f"peers: one-by-one enqueue of {args.enqueue_jobs} jobs in-process (beside HTTP create); "
        f"drain of {args.drain_jobs} jobs (procrastinate: "
        f"{min(args.drain_jobs, args.procrastinate_drain_jobs)}); "
        f"latency over {args.latency_jobs} jobs {args.latency_pause * 1000:g} ms apart",
    ]
    lines += [f"  {p}: {PEERS[p].setting}" for p in args.peers]
    return lines


def environment() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "jobstore": installed("jobstore"),
        # uvicorn takes httptools (a C parser) when it is installed, else h11 (pure Python)
        "packages": {
            name: installed(name)
            for name in ("uvicorn", "httptools", "uvloop", "starlette", "sqlalchemy", "asyncpg")
        },
        "git_commit": run("git", "-C", str(BENCH.parent), "rev-parse", "HEAD"),
        "git_dirty": bool(run("git", "-C", str(BENCH.parent), "status", "--porcelain")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "wrk": run("wrk", "--version").splitlines()[0] if jb.have_wrk() else None,
        "postgres_url": jb.PG_ADMIN.split("@")[-1],
    }


async def amain(args: argparse.Namespace) -> int:
    started = time.time()
    env = environment()
    jb.log(f"jobstore bench: databases {args.databases}, peers {args.peers or 'none'}")
    with tempfile.TemporaryDirectory(prefix="jobstore-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        await bench.run()
    results = bench.results
    table, verdicts = render_table(results, args)
    duration = time.time() - started
    env["loadavg_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_seconds": round(duration, 1),
        "environment": env,
        "settings": {
            k: v for k, v in vars(args).items() if isinstance(v, int | float | str | list | bool)
        },
        "peers": {p: {"packages": PEERS[p].packages, "setting": PEERS[p].setting} for p in PEERS},
        "figures": results.figures,
        "targets": verdicts,
        "notes": results.notes,
        "table": table,
    }
    path.write_text(json.dumps(report, indent=2, default=str))
    print(table)
    print()
    for line in describe(args):
        print(line)
    for note in results.notes:
        print(f"note: {note}")
    unmet = unmet_targets(verdicts)
    print(f"targets not met (by jobstore's best setting): {', '.join(unmet) or 'none'}")
    print(f"took {duration / 60:.1f} min; everything measured is in {path.relative_to(ROOT)}")
    return 0


def main() -> None:
    args = parse_args()
    try:
        sys.exit(asyncio.run(amain(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
