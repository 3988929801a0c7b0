"""Chaos as a test (docs/chaos.md): several real nodes on a throwaway PostgreSQL cluster, a load
of creates over REST and Kinetica from clients that re-send by tag, kill -9 and restarts (same
and new node ids), PostgreSQL stopped hard and started again, then every invariant checked from
SQL and from the ledger the handlers write.

`make chaos` runs a long round (CHAOS_SECONDS, 180 there); the default `pytest` run (so `make
test` and CI) runs a short one of 60 s. CHAOS_SEED repeats a run's random choices (kills,
creates; the timing of processes is never the same). The report is printed even when the run
passes, and kept in the test's tmp_path as report.txt with every node's log and the ledger.

The other tests here feed the checker facts that must fail, one invariant at a time: the run
can only pass because the invariants hold, not because the checker cannot see.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.chaos import Answer, ChaosConfig, Facts, check, run_chaos
from tests.support.topologies import require_topology_tools

SECONDS = float(os.environ.get("CHAOS_SECONDS") or 60)
SEED = int(os.environ.get("CHAOS_SEED") or 0)


@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(int(SECONDS) + 360)
def test_chaos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_topology_tools("postgres")
    outcome = run_chaos(tmp_path, ChaosConfig(seconds=SECONDS, seed=SEED))
    report = outcome.report()
    (tmp_path / "report.txt").write_text(report + "\n")
    with capsys.disabled():
        print(f"\n{report}\n  (run folder: {tmp_path})")

    logs = "\n".join(
        f"--- {n.slot} ({n.node_id}) ---\n{n.logs()[-4000:]}" for n in outcome.chaos.nodes
    )
    assert outcome.findings.violations == {}, f"{report}\n{logs}"
    # The run did what it says, so that a quiet one cannot pass: nodes killed both ways,
    # PostgreSQL restarted, creates answered over both facades, every kind of attempt end.
    facts = outcome.facts
    kills = outcome.chaos.kills
    assert len(kills) >= SECONDS / 30 and outcome.chaos.pg_restarts, report
    if len(kills) >= 12:  # both kinds are then all but certain (1 - 2 ** -11)
        assert {kill[2] for kill in kills} == {True, False}, report
    assert len(facts.answers) >= SECONDS * 3, report
    assert {a.facades[-1] for a in facts.answers} == {"rest", "kinetica"}, report
    outcomes = {a["outcome"] for a in facts.attempts}
    assert {"done", "error", "timeout", "lost"} <= outcomes, report
    assert any(j["endpoint"] == "/chaos/tick" for j in facts.jobs), report


# -- the checker sees what it must --------------------------------------------------------------

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _job(job_id: int, kind: str, status: str, attempt: int, **extra: Any) -> dict[str, Any]:
    endpoint = f"/chaos/{kind}"
    answer = {"job_id": job_id, "attempt": attempt, "node": "b", "pid": 2}
    return {
        "job_id": job_id,
        "job_tag": f"chaos-{kind}-{job_id}",
        "endpoint": endpoint,
        "status": status,
        "attempt": attempt,
        "max_attempts": 10,
        "retryable": kind != "once",
        "retry_errors": kind == "flaky",
        "backoff_seconds": 2.0 if kind == "flaky" else None,
        "timeout_seconds": 1.0 if kind == "slow" else None,
        "request_text": json.dumps({"kind": kind, "n": job_id}),
        "response_text": json.dumps(answer) if status == "done" else None,
        "status_map": "{}",
        "options": "{}",
        **extra,
    }


def _run(job_id: int, attempt: int, outcome: str, start: float, end: float) -> dict[str, Any]:
    node = "b" if outcome == "done" else "a"
    return {
        "job_id": job_id,
        "attempt": attempt,
        "node": node,
        "outcome": outcome,
        "started_at": _at(start),
        "finished_at": _at(end),
        "error_message": None,
    }


def _event(
    event: str, job_id: int, attempt: int, node: str, at: float = 0, **extra: Any
) -> dict[str, Any]:
    pid = 2 if node == "b" else 1
    line = {"event": event, "job": job_id, "attempt": attempt, "node": node, "pid": pid}
    return {**line, "t": _at(at).timestamp(), **extra}


def clean_facts() -> Facts:
    """A small run that keeps every invariant: a sleep job lost once then done elsewhere, a
    once job done, a flaky job done after two planned failures, a slow job timed out, and two
    fires of the schedule one second apart."""
    tick = {"endpoint": "/chaos/tick", "request_text": json.dumps({"kind": "tick"})}
    jobs = [
        _job(1, "sleep", "done", 2),
        _job(2, "once", "done", 1),
        _job(3, "flaky", "done", 3),
        _job(
            4, "slow", "error", 1, status_map=json.dumps({"error_message": "timed out after 1 s"})
        ),
        _job(5, "tick", "done", 1, **tick, options=json.dumps({"fire_time": _at(10).isoformat()})),
        _job(6, "tick", "done", 1, **tick, options=json.dumps({"fire_time": _at(11).isoformat()})),
    ]
    attempts = [
        _run(1, 1, "lost", 0, 5),
        _run(1, 2, "done", 5, 6),
        {**_run(2, 1, "done", 0, 1)},
        # Attempt 1 failed at 1 and its outcome was written late (an outage), at 2.5: its
        # backoff (2 s, at least 1.6) counts from 1. Attempt 2's node had a clock 0.3 s behind.
        _run(3, 1, "error", 0, 2.5),
        _run(3, 2, "error", 2.7, 3.1),
        _run(3, 3, "done", 7, 7.1),
        _run(4, 1, "timeout", 0, 1.01),
        _run(5, 1, "done", 10, 10.1),
        _run(6, 1, "done", 11, 11.1),
    ]
    ledger = [
        _event("start", 1, 1, "a"),
        _event("start", 1, 2, "b"),
        _event("finish", 1, 2, "b"),
        _event("start", 2, 1, "b"),
        _event("finish", 2, 1, "b"),
        _event("start", 3, 1, "a"),
        _event("fail", 3, 1, "a", at=1),
        _event("start", 3, 2, "a", at=3),
        _event("fail", 3, 2, "a", at=3.1),
        _event("start", 3, 3, "b", at=7),
        _event("finish", 3, 3, "b", at=7.1),
        _event("start", 4, 1, "a"),
        _event("stop", 4, 1, "a", timed_out=True),
        *(e for j in (5, 6) for e in (_event("start", j, 1, "b"), _event("finish", j, 1, "b"))),
    ]
    answers = [Answer(f"chaos-{k}-{i}", i, i, 1, ["rest"]) for i, k in enumerate(KINDS, 1)]
    return Facts(answers=answers, jobs=jobs, attempts=attempts, ledger=ledger)


KINDS = ("sleep", "once", "flaky", "slow")


def _set(rows: list[dict[str, Any]], match: dict[str, Any], **changes: Any) -> None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            row.update(changes)


def _duplicate(f: Facts) -> None:
    f.jobs.append({**f.jobs[0], "job_id": 99, "job_tag": "generated", "status": "done"})


BREAKS: dict[str, Callable[[Facts], None]] = {
    "lost": lambda f: f.answers.append(Answer("chaos-sleep-77", 77, 77, 3, ["kinetica"])),
    "wrong_id": lambda f: f.answers.append(Answer("chaos-sleep-1", 1, 42, 2, ["rest"])),
    "duplicated": _duplicate,
    "stuck": lambda f: _set(f.jobs, {"job_id": 2}, status="running"),
    "wrong_end": lambda f: _set(f.jobs, {"job_id": 4}, status_map='{"error_message": "boom"}'),
    "once_twice": lambda f: f.ledger.append(_event("start", 2, 1, "b")),
    "result_unfinished": lambda f: _set(f.jobs, {"job_id": 1}, response_text='{"attempt": 1}'),
    "attempt_rows": lambda f: f.attempts.remove(f.attempts[0]),
    "run_unclaimed": lambda f: _set(f.ledger, {"job": 1, "attempt": 1}, node="c"),
    "outcome_unexplained": lambda f: f.ledger.remove(_event("fail", 3, 1, "a", at=1)),
    "timeout_early": lambda f: _set(f.attempts, {"job_id": 4}, finished_at=_at(0.3)),
    "retry_early": lambda f: _set(
        f.ledger, {"job": 3, "attempt": 2, "event": "start"}, t=_at(1.5).timestamp()
    ),
    "schedule_twice": lambda f: f.jobs.append({**f.jobs[4], "job_id": 7, "job_tag": "x"}),
    "schedule_missed": lambda f: _set(
        f.jobs, {"job_id": 6}, options=json.dumps({"fire_time": _at(13).isoformat()})
    ),
    "ledger_torn": lambda f: f.ledger.append({"event": "torn", "line": '{"event": "sta'}),
    "refused": lambda f: f.refused.append("chaos-sleep-9 via rest: HTTP 400"),
    "gave_up": lambda f: f.gave_up.append("chaos-sleep-9 after 40 tries"),
    "died": lambda f: f.died.append("serve1 exited 1"),
    "harness": lambda f: f.harness.append("RuntimeError: pg_ctl start failed"),
}


def test_the_checker_passes_a_clean_run() -> None:
    assert check(clean_facts()).violations == {}


@pytest.mark.parametrize("invariant", sorted(BREAKS))
def test_the_checker_catches_each_break(invariant: str) -> None:
    facts = copy.deepcopy(clean_facts())
    BREAKS[invariant](facts)
    violations = check(facts).violations
    assert violations.get(invariant, 0) >= 1, violations
