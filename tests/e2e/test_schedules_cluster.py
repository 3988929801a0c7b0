"""A recurring schedule on three real nodes: `jobstore serve` processes on one database, each
firing the schedules of its endpoints. Every fire time creates exactly one job, whichever node
gets there first, and none is skipped."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.e2e import MakeServer, query, server_factory

SECONDS = 10


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    with server_factory(database_url, tmp_path) as make:
        yield make


@dataclass(frozen=True)
class Fired:
    job_id: int
    tag: str
    fire_time: datetime
    created_at: datetime


def fired_jobs(url: str, name: str) -> list[Fired]:
    """The jobs the schedule `name` created, by fire time."""
    fired = []
    for row in query(url, "SELECT job_id, job_tag, options, created_at FROM jobs"):
        options = row["options"] if isinstance(row["options"], dict) else json.loads(row["options"])
        if options.get("schedule") != name:
            continue
        created_at = row["created_at"]
        if isinstance(created_at, str):  # SQLite: naive UTC text
            created_at = datetime.fromisoformat(created_at).replace(tzinfo=UTC)
        when = datetime.fromisoformat(options["fire_time"])
        fired.append(Fired(row["job_id"], row["job_tag"], when, created_at))
    return sorted(fired, key=lambda f: f.fire_time)


def test_every_second_on_three_nodes_fires_each_time_once(
    servers: MakeServer, database_url: str
) -> None:
    nodes = [servers(node_id=f"node-{n}").start() for n in range(3)]
    created = nodes[1].client.post(
        "/api/v1/schedules",
        json={"name": "tick", "endpoint": "/echo", "payload": {"n": 1}, "every_seconds": 1},
    )
    assert created.status_code == 201, created.text
    time.sleep(SECONDS + 0.5)
    paused = nodes[2].client.post("/api/v1/schedules/tick/pause")
    assert paused.status_code == 200, paused.text
    time.sleep(0.5)  # a fire that was under way when the pause came is committed by now

    jobs = fired_jobs(database_url, "tick")
    times = [j.fire_time for j in jobs]
    assert len(times) >= SECONDS, times
    assert len(set(times)) == len(times), "a fire time created two jobs"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps == [1.0] * len(gaps), f"a fire time was skipped or doubled: {gaps}"
    assert len({j.tag for j in jobs}) == len(jobs)
    for job in jobs:  # each fired within a second of its time (judged on the database's clock)
        late = (job.created_at - job.fire_time).total_seconds()
        assert 0 <= late < 1.0, f"job {job.job_id} created {late:.3f} s after its fire time"
    for job in jobs:  # and the nodes kept up: every fired job ran
        assert nodes[0].wait_job(job.job_id, timeout=20)["job_status"] == "DONE"
