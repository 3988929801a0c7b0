"""The chaos harness (docs/chaos.md): real nodes on a throwaway PostgreSQL cluster, a load of
creates from clients that re-send by tag, kill -9 and restarts, PostgreSQL restarts, then every
invariant checked from SQL and from the ledger the handlers write (tests/support/chaos_endpoints).

    outcome = run_chaos(workdir, ChaosConfig(seconds=60))
    print(outcome.report())          # jobs, kills, restarts, each invariant's count
    assert outcome.findings.violations == {}

`check` is pure (facts in, offenders out): tests/chaos also feeds it facts that must fail.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.chaos_endpoints import (
    ENDPOINT_KINDS,
    LEDGER_VARIABLE,
    LOST,
    NODE_VARIABLE,
    SCHEDULE_NAME,
    Create,
    ends_as_it_must,
    new_create,
    read_ledger,
)
from tests.support.e2e import Server, clean_env, run_cli_ok, wait_for
from tests.support.topologies import PgCluster, fetch

CHAOS_ENDPOINTS = "tests.support.chaos_endpoints"
FINAL = ("done", "error", "cancelled")


@dataclass(frozen=True)
class ChaosConfig:
    seconds: float = 60.0  # of load and chaos; the drain and the checks come after
    serve_nodes: int = 3
    workers: int = 1
    lease_seconds: float = 3.0
    concurrency: int = 8
    creators: int = 3  # client threads
    create_pause: float = 0.15  # each client's pause between two creates
    kill_every: tuple[float, float] = (1.0, 3.0)  # from a restart to the next kill, at random
    down_for: tuple[float, float] = (0.0, 2.0)  # a killed node's time down, at random
    pg_outage_seconds: float = 5.0  # longer than a lease: every node loses its leases
    drain_seconds: float = 90.0
    resend_seconds: float = 60.0  # a client gives up on a create after this long
    seed: int = 0  # 0: a random one (the report shows it: CHAOS_SEED repeats a run's choices)


class ChaosNode(Server):
    """A `jobstore serve` or `jobstore worker` process in one slot of the cluster. A restart
    keeps the slot, port and log file, and takes `node_id` as it is then (the same or new)."""

    def __init__(self, url: str, workdir: Path, *, slot: str, command: str, **kw: Any) -> None:
        kw.setdefault("log_level", "info")  # "node N restarted: requeued [...]" and the like
        super().__init__(url, workdir, node_id=slot, endpoints=CHAOS_ENDPOINTS, **kw)
        self.slot = slot
        self.command = command
        self.log_path = workdir / f"{slot}.log"
        self._mark = 0

    @property
    def argv(self) -> list[str]:
        argv = super().argv
        if self.command == "worker":  # no HTTP: drop `serve` and `--port N`
            at = argv.index("--port")
            argv = [*argv[:3], "worker", *argv[4:at], *argv[at + 2 :]]
        return argv

    def start(self, *, extra_args: Sequence[str] | None = None, timeout: float = 45.0) -> ChaosNode:
        ledger = str(self.workdir / "ledger.jsonl")
        self.env = {**clean_env(), LEDGER_VARIABLE: ledger, NODE_VARIABLE: self.node_id}
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        super().start(extra_args=extra_args, timeout=timeout)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.command == "serve" or self.proc.poll() is not None:
            return super()._ready()  # raises, with the logs, once the process has exited
        with self.log_path.open("rb") as log:
            log.seek(self._mark)
            return f"worker, node {self.node_id},".encode() in log.read()


# -- the load -----------------------------------------------------------------------------------


class Load:
    """Client threads that create jobs on random serve nodes, half over REST and half over
    Kinetica's /create/job, each with a tag. A create that got no answer, or a 503, is sent
    again, same tag and payload, to a random node and facade until one answers."""

    def __init__(self, nodes: Sequence[ChaosNode], config: ChaosConfig, seed: int) -> None:
        self.nodes = [n for n in nodes if n.command == "serve"]
        self.config = config
        self.seed = seed
        self.answers: list[Answer] = []
        self.gave_up: list[str] = []
        self.refused: list[str] = []
        self.failures: list[str] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        for i in range(self.config.creators):
            self._threads.append(threading.Thread(target=self._loop, args=(i,), daemon=True))
            self._threads[-1].start()
        return self

    def stop(self, *, abort: bool = False) -> None:
        """Stop creating; a create still being re-sent goes on until answered (or given up),
        unless `abort`."""
        self._stop.set()
        if abort:
            self._abort.set()
        for thread in self._threads:
            thread.join(timeout=self.config.resend_seconds + 30)

    def _loop(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                try:
                    self._send(client, new_create(next(self._numbers), rng), rng)
                except Exception as exc:  # a bug here: reported, and the test fails
                    self.failures.append(f"creator {i}: {type(exc).__name__}: {exc}")
                    return
                self._stop.wait(self.config.create_pause)

    def _send(self, client: httpx.Client, create: Create, rng: random.Random) -> None:
        deadline = time.monotonic() + self.config.resend_seconds
        facades: list[str] = []
        for tries in itertools.count(1):
            if self._abort.is_set():
                return
            facade = rng.choice(("rest", "kinetica"))
            facades.append(facade)
            node = rng.choice(self.nodes)
            verdict, value = self._try(client, node, facade, create)
            with self._lock:
                if verdict == "ok":
                    self.answers.append(Answer(create.tag, create.n, int(value), tries, facades))
                    return
                if verdict == "refused":
                    self.refused.append(f"{create.tag} via {facade} on {node.slot}: {value}")
                    return
                self.errors[str(value)] += 1
            if time.monotonic() > deadline:
                with self._lock:
                    self.gave_up.append(f"{create.tag} after {tries} tries, last: {value}")
                return
            time.sleep(min(1.0, 0.05 * 2**tries) * rng.uniform(0.5, 1.0))

    @staticmethod
    def _try(client: httpx.Client, node: ChaosNode, facade: str, c: Create) -> tuple[str, Any]:
        """("ok", job id), ("again", why) or ("refused", why)."""
        try:
            if facade == "rest":
                response = client.post(f"{node.url}/api/v1/jobs", json=c.rest_body())
                if response.status_code in (200, 201):
                    return "ok", response.json()["id"]
            else:
                response = client.post(f"{node.url}/create/job", json=c.kinetica_body())
                if response.status_code == 200 and response.json()["status"] == "OK":
                    return "ok", json.loads(response.json()["data_str"])["job_id"]
        except httpx.TransportError as exc:
            return "again", type(exc).__name__
        except (ValueError, KeyError) as exc:  # not the answer either API documents
            return "refused", f"HTTP {response.status_code} {exc!r}: {response.text[:300]}"
        if response.status_code == 503:
            return "again", "HTTP 503"
        return "refused", f"HTTP {response.status_code} {response.text[:300]}"


# -- the chaos ----------------------------------------------------------------------------------


class Chaos:
    """One thread: every few seconds, kill -9 a random node and start it again, under its id
    or a new one; now and then stop PostgreSQL hard (immediate) and start it again after
    longer than a lease. A node found dead that nobody killed is counted and restarted."""

    def __init__(
        self, nodes: Sequence[ChaosNode], cluster: PgCluster, config: ChaosConfig, seed: int
    ) -> None:
        self.nodes = list(nodes)
        self.cluster = cluster
        self.config = config
        self.rng = random.Random(seed)
        # (when, "old id -> new id", same id, seconds from the kill until it answered again)
        self.kills: list[tuple[float, str, bool, float]] = []
        self.pg_restarts: list[tuple[float, float]] = []  # (when, seconds down)
        self.died: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self._began = 0.0

    def start(self) -> Chaos:
        self._began = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)

    def _run(self) -> None:
        seconds = self.config.seconds
        restarts = max(1, int(-(-seconds // 60)))  # one per started minute
        pg_due = [(i + 0.5) * seconds / restarts for i in range(restarts)]
        try:
            while not self._stop.wait(self.rng.uniform(*self.config.kill_every)):
                self.revive()
                if pg_due and time.monotonic() - self._began >= pg_due[0]:
                    pg_due.pop(0)
                    self._restart_postgres()
                else:
                    self._kill_one()
        except Exception as exc:  # the harness failed: reported, and the test fails
            self.failures.append(f"{type(exc).__name__}: {exc}")

    def _kill_one(self) -> None:
        node = self.rng.choice(self.nodes)
        old = node.node_id
        node.kill()
        at = time.monotonic() - self._began
        self._stop.wait(self.rng.uniform(*self.config.down_for))
        same = self.rng.random() < 0.5
        if not same:
            node.node_id = f"{node.slot}-{len(self.kills) + 1}"
        node.start()
        back = time.monotonic() - self._began - at
        self.kills.append((at, f"{old} -> {node.node_id}", same, back))

    def _restart_postgres(self) -> None:
        at = time.monotonic() - self._began
        self.cluster.stop("immediate")
        time.sleep(self.config.pg_outage_seconds)
        self.cluster.start()
        self.pg_restarts.append((at, time.monotonic() - self._began - at))

    def revive(self) -> None:
        """Restart every node that died without being killed (counted in `died`)."""
        for node in self.nodes:
            if not node.running:
                code = node.proc.returncode if node.proc is not None else None
                self.died.append(f"{node.node_id} exited {code}: {node.logs()[-3000:]}")
                node.start()


@dataclass
class Outcome:
    config: ChaosConfig
    seed: int
    facts: Facts
    findings: Findings
    chaos: Chaos
    load: Load
    timings: dict[str, float]

    def report(self) -> str:
        """The run's figures, then every invariant's count and a few offenders of each."""
        c, facts, found = self.config, self.facts, self.findings.found
        kills, pg = self.chaos.kills, self.chaos.pg_restarts
        same = sum(k[2] for k in kills)
        back = [k[3] for k in kills] or [0.0]
        count = collections.Counter
        kinds = count(ENDPOINT_KINDS.get(j["endpoint"], "?") for j in facts.jobs)
        lines = [
            f"chaos: {c.seconds:g} s of load, {c.serve_nodes} serve + {c.workers} worker nodes, "
            f"lease {c.lease_seconds:g} s, seed {self.seed}; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()),
            f"  kills (-9): {len(kills)}, restarts under the same id {same}, "
            f"under a new id {len(kills) - same}, back after {sum(back) / len(back):.1f} s on "
            f"average ({max(back):.1f} s at most); PostgreSQL restarts (immediate): {len(pg)} "
            f"({', '.join(f'at {at:.0f} s, down {down:.1f} s' for at, down in pg)})",
            f"  creates answered: {len(facts.answers)} "
            f"{dict(count(a.facades[-1] for a in facts.answers))}; re-sent "
            f"{sum(a.tries > 1 for a in facts.answers)}, answered through the other facade "
            f"{sum(len(set(a.facades)) > 1 for a in facts.answers)}; client errors re-sent "
            f"{dict(sorted(self.load.errors.items()))}",
            f"  jobs: {len(facts.jobs)} {dict(sorted(kinds.items()))}; final states "
            f"{dict(count(j['status'] for j in facts.jobs))}; "
            f"run more than once {sum(j['attempt'] > 1 for j in facts.jobs)}",
            f"  attempts: {len(facts.attempts)} "
            f"{dict(count(a['outcome'] for a in facts.attempts))}",
            f"  ledger: {len(facts.ledger)} events {dict(count(e['event'] for e in facts.ledger))}",
            "  invariants (each must be 0):",
            *(f"    {name:<20}{len(found[name]):>6}  {text}" for name, text in INVARIANTS.items()),
        ]
        for name, offenders in found.items():
            lines += [f"  {name}, e.g.:", *(f"    {x}" for x in offenders[:5])] * bool(offenders)
        return "\n".join(lines)


def run_chaos(workdir: Path, config: ChaosConfig) -> Outcome:
    """Start a cluster and the nodes, run load and chaos for `config.seconds`, drain, check.
    Everything started here is stopped and removed, also when it fails."""
    seed = config.seed or random.SystemRandom().randrange(1, 10**6)
    began, timings = time.monotonic(), dict[str, float]()

    def lap(name: str) -> None:
        timings[name] = time.monotonic() - began - sum(timings.values())

    cluster = PgCluster.create(name="chaos")
    nodes: list[ChaosNode] = []
    load: Load | None = None
    chaos: Chaos | None = None
    try:
        url = cluster.create_database("jobs")
        run_cli_ok(["db", "upgrade", "--database-url", url], workdir, timeout=120)
        args = ["--concurrency", str(config.concurrency), "--pool-size", "5"]
        given: dict[str, Any] = dict(extra_args=args, lease_seconds=config.lease_seconds)
        for command, count in (("serve", config.serve_nodes), ("worker", config.workers)):
            for i in range(count):
                node = ChaosNode(url, workdir, slot=f"{command}{i + 1}", command=command, **given)
                nodes.append(node.start())
        lap("setup")
        load = Load(nodes, config, seed).start()
        chaos = Chaos(nodes, cluster, config, seed).start()
        time.sleep(config.seconds)
        chaos.stop()
        load.stop()
        lap("load")
        chaos.revive()
        _pause_schedule(nodes)
        _drain(url, config.drain_seconds)
        lap("drain")
        for node in nodes:
            node.kill()
        facts = Facts(
            answers=load.answers,
            jobs=[dict(r) for r in fetch(url, JOBS_SQL)],
            attempts=[dict(r) for r in fetch(url, ATTEMPTS_SQL)],
            ledger=read_ledger(workdir / "ledger.jsonl"),
            gave_up=load.gave_up,
            refused=load.refused,
            died=chaos.died,
            harness=chaos.failures + load.failures,
        )
        lap("check")
        return Outcome(config, seed, facts, check(facts), chaos, load, timings)
    finally:
        if chaos is not None:
            chaos.stop()  # first: it may be starting a node
        if load is not None:
            load.stop(abort=True)
        for node in nodes:
            node.cleanup()
        cluster.cleanup()


JOBS_SQL = (
    "SELECT job_id, job_tag, endpoint, status, attempt, max_attempts, retryable, retry_errors,"
    " backoff_seconds, timeout_seconds, request_text, response_text,"
    " status_map::text AS status_map, options::text AS options FROM jobs ORDER BY job_id"
)
ATTEMPTS_SQL = (
    "SELECT job_id, attempt, node, outcome, started_at, finished_at, error_message"
    " FROM job_attempts ORDER BY job_id, attempt"
)


def _pause_schedule(nodes: Sequence[ChaosNode]) -> None:
    """Pause the every-second schedule, so that the drain can end."""
    urls = [
        f"{n.url}/api/v1/schedules/{SCHEDULE_NAME}/pause" for n in nodes if n.command == "serve"
    ]

    def paused() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.post(random.choice(urls), timeout=10).status_code == 200
        return False

    wait_for("the schedule to pause", paused, timeout=60, interval=0.5)


def _drain(url: str, seconds: float) -> None:
    """Wait (at most `seconds`) until no job is scheduled, queued or running."""
    sql = "SELECT count(*) AS n FROM jobs WHERE status IN ('scheduled', 'queued', 'running')"
    deadline = time.monotonic() + seconds
    while fetch(url, sql)[0]["n"] and time.monotonic() < deadline:
        time.sleep(0.25)


# -- the invariants -----------------------------------------------------------------------------

INVARIANTS: dict[str, str] = {
    "lost": "answered creates whose tag has no job",
    "wrong_id": "answered creates whose tag's job has another id than the answer",
    "duplicated": "creates stored as more than one job (same payload number)",
    "stuck": "jobs still scheduled, queued or running after the drain",
    "wrong_end": "jobs whose final state is not what their endpoint must end in",
    "once_twice": "non-retryable jobs started twice (ledger) or claimed twice",
    "result_unfinished": "done jobs whose result is not from a finished `done` attempt",
    "attempt_rows": "jobs whose job_attempts are not 1..attempt, closed, the last as the state",
    "run_unclaimed": "ledger starts without the job_attempts row of that attempt and node",
    "outcome_unexplained": "attempts closed done/error/timeout/cancelled without the ledger event",
    "timeout_early": "attempts closed `timeout` before timeout_seconds had passed",
    "retry_early": "attempts started before the backoff after the failed one before",
    "schedule_twice": "schedule fire times with more than one job",
    "schedule_missed": "schedule fire times missing between the first and the last",
    "ledger_torn": "ledger lines that do not parse",
    "refused": "creates refused (an answer other than success or 503)",
    "gave_up": "creates not answered within the re-send time",
    "died": "nodes that exited without being killed",
    "harness": "failures of the harness itself",
}
# A final state, and the outcomes its last attempt may have.
LAST_OUTCOMES = {
    "done": {"done"},
    "error": {"error", "timeout", *LOST},
    "cancelled": {"cancelled", *LOST},
}
# The ledger event that must explain an attempt's outcome (None: nothing can).
EXPLAINED_BY = {"done": "finish", "error": "fail", "timeout": "stop", "cancelled": None}
TOLERANCE = 0.5  # s: nodes' clocks agree to a read's round trip (0.4 s seen, loaded)


@dataclass(frozen=True)
class Answer:
    tag: str
    n: int
    job_id: int
    tries: int
    facades: list[str]  # of each try, the last one answered


@dataclass
class Facts:
    """What a run leaves: the answered creates, the tables, the ledger, the harness's notes."""

    answers: list[Answer]
    jobs: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    gave_up: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    died: list[str] = field(default_factory=list)
    harness: list[str] = field(default_factory=list)


@dataclass
class Findings:
    found: dict[str, list[str]]  # every invariant's offenders: none when it holds

    @property
    def violations(self) -> dict[str, int]:
        return {name: len(offenders) for name, offenders in self.found.items() if offenders}


def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def check(facts: Facts) -> Findings:
    """Count the offenders of every invariant (INVARIANTS)."""
    found: dict[str, list[str]] = {name: [] for name in INVARIANTS}
    by_tag = {job["job_tag"]: job for job in facts.jobs}
    runs: dict[int, dict[int, dict[str, Any]]] = collections.defaultdict(dict)
    for row in facts.attempts:
        runs[row["job_id"]][row["attempt"]] = row
    events: dict[tuple[Any, Any, str], list[dict[str, Any]]] = collections.defaultdict(list)
    starts: collections.Counter[Any] = collections.Counter()
    for event in facts.ledger:
        events[(event.get("job"), event.get("attempt"), event["event"])].append(event)
        starts[event.get("job")] += event["event"] == "start"
        if event["event"] == "torn":
            found["ledger_torn"].append(str(event.get("line")))

    for answer in facts.answers:
        job = by_tag.get(answer.tag)
        if job is None:
            found["lost"].append(f"{answer.tag}, answered as job {answer.job_id}")
        elif job["job_id"] != answer.job_id:
            found["wrong_id"].append(f"{answer.tag}: answered {answer.job_id}, is {job['job_id']}")
    numbers = collections.Counter(_json(job["request_text"]).get("n") for job in facts.jobs)
    found["duplicated"] = [f"payload n={n}: {k} jobs" for n, k in numbers.items() if n and k > 1]
    for job in facts.jobs:
        _check_job(job, runs[job["job_id"]], events, starts, found)
    for (job_id, attempt, kind), evs in events.items():
        run = runs.get(job_id, {}).get(attempt)
        if kind == "start" and (len(evs) > 1 or run is None or run["node"] != evs[0]["node"]):
            nodes = [e["node"] for e in evs]
            found["run_unclaimed"].append(f"job {job_id} attempt {attempt} on {nodes}: {run}")
    _check_schedule(facts.jobs, found)
    for name in ("gave_up", "refused", "died", "harness"):
        found[name] = list(getattr(facts, name))
    return Findings(found)


def _check_job(
    job: dict[str, Any],
    rows: dict[int, dict[str, Any]],
    events: dict[tuple[Any, Any, str], list[dict[str, Any]]],
    starts: collections.Counter[Any],
    found: dict[str, list[str]],
) -> None:
    jid, status, attempt = job["job_id"], job["status"], job["attempt"]
    kind = ENDPOINT_KINDS.get(job["endpoint"], "?")
    if status not in FINAL:
        found["stuck"].append(f"job {jid} ({kind}) {status}, attempt {attempt}")
        return
    last = rows.get(attempt, {}).get("outcome")
    message = _json(job["status_map"]).get("error_message", "")
    timeout = job["timeout_seconds"]
    if not ends_as_it_must(kind, status, last, message, timeout):
        found["wrong_end"].append(f"job {jid} ({kind}) {status}, last attempt {last}: {message}")
    if kind == "once" and (attempt > 1 or starts[jid] > 1):
        found["once_twice"].append(f"job {jid}: attempt {attempt}, {starts[jid]} starts")

    problems = []
    if sorted(rows) != list(range(1, attempt + 1)):
        problems.append(f"attempt rows {sorted(rows)} for attempt {attempt}")
    if unclosed := [n for n, r in rows.items() if r["outcome"] is None or r["finished_at"] is None]:
        problems.append(f"attempts {unclosed} not closed")
    if last not in LAST_OUTCOMES[status]:
        problems.append(f"last attempt {last} for a job {status}")
    for n, row in sorted(rows.items()):
        outcome, later = row["outcome"], rows.get(n + 1)
        if later is not None and not (
            outcome in LOST or (outcome in ("error", "timeout") and job["retry_errors"])
        ):
            problems.append(f"attempt {n} {outcome}, then attempt {n + 1}")
        wanted = EXPLAINED_BY.get(outcome, "")
        seen = [
            e
            for e in events.get((jid, n, wanted or ""), [])
            if e["node"] == row["node"] and (wanted != "stop" or e.get("timed_out"))
        ]
        if outcome in EXPLAINED_BY and not seen:
            found["outcome_unexplained"].append(
                f"job {jid} attempt {n} {outcome} on {row['node']}, no ledger {wanted}"
            )
        took = _seconds(row["started_at"], row["finished_at"])
        if outcome == "timeout" and took is not None and took < timeout - TOLERANCE:
            found["timeout_early"].append(f"job {jid} attempt {n}: {took:.3f} s of {timeout} s")
        if outcome in ("error", "timeout") and later is not None:
            # From the failure (not the write of its outcome, which waits out an outage) to
            # the next start, both as the ledger has them: one clock, the machine's.
            failed = _at(seen[-1]) if seen else row["finished_at"]
            nxt = [_at(e) for e in events.get((jid, n + 1, "start"), [])] or [later["started_at"]]
            backoff = job["backoff_seconds"] if job["backoff_seconds"] is not None else 1.0
            least = min(3600.0, backoff * 2 ** (n - 1)) * 0.8 - TOLERANCE
            waited = _seconds(failed, nxt[0])
            if waited is not None and waited < least:
                found["retry_early"].append(f"job {jid} attempt {n + 1}: {waited:.3f} s < {least}")
    if problems:
        found["attempt_rows"].append(f"job {jid} ({kind}): " + "; ".join(problems))

    if status == "done":
        answer = _json(job["response_text"])
        finish = events.get((jid, attempt, "finish"), [])
        if not (
            isinstance(answer, dict)
            and (answer.get("job_id"), answer.get("attempt")) == (jid, attempt)
            and last == "done"
            and any((e["pid"], e["node"]) == (answer["pid"], answer["node"]) for e in finish)
        ):
            found["result_unfinished"].append(f"job {jid} attempt {attempt}: {answer}, {finish}")


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event["t"], UTC)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def _check_schedule(jobs: list[dict[str, Any]], found: dict[str, list[str]]) -> None:
    fires = collections.Counter(
        _json(job["options"]).get("fire_time") for job in jobs if job["endpoint"] == "/chaos/tick"
    )
    found["schedule_twice"] = [f"{t}: {k} jobs" for t, k in fires.items() if k > 1 or t is None]
    times = sorted(datetime.fromisoformat(t) for t in fires if t)
    for before, after in itertools.pairwise(times):
        gap = round((after - before).total_seconds())
        found["schedule_missed"] += [f"{gap - 1} between {before} and {after}"] * (gap - 1)
