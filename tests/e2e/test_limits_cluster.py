"""Concurrency limits across real nodes: three `jobstore serve` processes on one database, and
a key limited to 2. What ran when is read from records the handlers write, not from jobstore's
own counters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import MakeServer, server_factory

JOBS = 20


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    with server_factory(database_url, tmp_path) as make:
        yield make


def most_at_once(lines: list[str]) -> int:
    """The most handlers running at one moment, from `start ID TIME` / `end ID TIME` lines."""
    events = sorted(
        (float(when), 1 if kind == "start" else -1)
        for kind, _, when in (line.split() for line in lines)
    )
    # At one instant an end is counted before a start: they did not overlap.
    events.sort(key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_a_limit_of_two_holds_across_three_nodes(servers: MakeServer, tmp_path: Path) -> None:
    nodes = [servers(node_id=f"node-{n}").start() for n in range(3)]
    record = tmp_path / "limited.log"
    ids = [
        nodes[n % 3].create_job(
            "/limited",
            {"path": str(record), "seconds": 0.3},
            options={"concurrency_key": "customer-1"},
        )
        for n in range(JOBS)
    ]
    # And another key's jobs, which the first key's limit must not hold back.
    other = [
        nodes[0].create_job(
            "/limited",
            {"path": str(tmp_path / "other.log"), "seconds": 0.3},
            options={"concurrency_key": "customer-2"},
        )
        for _ in range(2)
    ]
    for job_id in ids + other:
        assert nodes[0].wait_job(job_id, timeout=60)["job_status"] == "DONE"
    lines = record.read_text().splitlines()
    assert len(lines) == 2 * JOBS  # each job ran once
    assert most_at_once(lines) == 2  # never more than 2; and the limit, not luck, was the cap
    starts = [float(line.split()[2]) for line in lines if line.startswith("start")]
    other_starts = [
        float(line.split()[2])
        for line in (tmp_path / "other.log").read_text().splitlines()
        if line.startswith("start")
    ]
    # customer-2 did not wait for customer-1's backlog (which takes about 3 s at 2 at a time).
    assert max(other_starts) < sorted(starts)[JOBS // 2]
    assert all(n.running for n in nodes), "a node died"
