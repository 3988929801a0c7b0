"""Schedules declared next to their endpoint (`@endpoint(..., schedule=...)`), stored by every
node at start; and the schedule metrics. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jobstore.cli.node import Node, node_for_tests
from jobstore.core.schedules import NewSchedule
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.registry import EndpointRegistry, JobContext, default_registry, endpoint
from jobstore.store import Database

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def registry_with(**schedule: Any) -> EndpointRegistry:
    @endpoint("/reports/nightly", schedule=schedule or "0 2 * * *")
    async def nightly(request: Any, ctx: JobContext) -> dict[str, Any]:
        return {"ok": True}

    registry = default_registry()
    registry.add(nightly.__jobstore_endpoint__)  # type: ignore[attr-defined]
    return registry


@pytest.fixture
async def nodes(db: Database, clock: ManualClock) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        await node.schedules.stop()
        await node.executor.stop()


async def start(db: Database, clock: ManualClock, nodes: list[Node], **schedule: Any) -> Node:
    node = node_for_tests(
        db, node_id=f"code-{len(nodes)}", clock=clock, registry=registry_with(**schedule)
    )
    nodes.append(node)
    await node.schedules.start()
    return node


async def test_a_declared_schedule_is_stored_at_start_once_by_many_nodes(
    db: Database, clock: ManualClock, nodes: list[Node]
) -> None:
    first = await start(db, clock, nodes, cron="0 2 * * *", timezone="Europe/Berlin")
    await start(db, clock, nodes, cron="0 2 * * *", timezone="Europe/Berlin")
    [stored] = await first.schedules.list()
    assert (stored.name, stored.source, stored.endpoint) == (
        "reports.nightly",
        "code",
        "/reports/nightly",
    )
    assert stored.cron == "0 2 * * *" and stored.timezone == "Europe/Berlin"
    assert stored.next_fire_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # 02:00 CEST


async def test_a_changed_declaration_updates_it_and_a_pause_lasts(
    db: Database, clock: ManualClock, nodes: list[Node]
) -> None:
    node = await start(db, clock, nodes, every_seconds=60, payload={"day": "today"})
    await node.schedules.set_enabled("reports.nightly", False)
    again = await start(db, clock, nodes, every_seconds=120, payload={"day": "yesterday"})
    stored = await again.schedules.get("reports.nightly")
    assert stored.every_seconds == 120 and stored.request_text == '{"day":"yesterday"}'
    assert not stored.enabled  # paused by an operator: a restart does not resume it


async def test_a_name_taken_by_another_source_is_left_alone(
    db: Database, clock: ManualClock, nodes: list[Node]
) -> None:
    first = await start(db, clock, nodes, every_seconds=60, name="mine")
    await first.schedules.delete("mine")
    await first.schedules.create(
        NewSchedule(
            name="mine",
            endpoint="/echo",
            payload=Payload(Encoding.JSON, text="{}"),
            every_seconds=5,
        )
    )
    second = await start(db, clock, nodes, every_seconds=60, name="mine")
    kept = await second.schedules.get("mine")
    assert (kept.source, kept.endpoint, kept.every_seconds) == ("api", "/echo", 5)


def test_a_declaration_that_cannot_fire_stops_the_node_at_import() -> None:
    with pytest.raises(ConfigError, match="schedule"):
        registry_with(cron="61 * * * *")
    with pytest.raises(ConfigError, match="unknown fields"):
        registry_with(cron="* * * * *", when="now")


async def test_a_payload_the_endpoint_refuses_stops_the_start(
    db: Database, clock: ManualClock, nodes: list[Node]
) -> None:
    with pytest.raises(ConfigError, match=r"reports\.nightly"):
        await start(db, clock, nodes, every_seconds=60, options={"priority": "high"})


async def test_fires_and_misfires_are_counted(db: Database, clock: ManualClock) -> None:
    node = node_for_tests(db, node_id="metrics", clock=clock, metrics=True)
    try:
        await node.schedules.create(
            NewSchedule(
                name="tick",
                endpoint="/echo",
                payload=Payload(Encoding.JSON, text="{}"),
                every_seconds=1,
                start_at=START,
            )
        )
        await node.schedules.fire_due()
        clock.advance(1)
        await node.schedules.fire_due()
        clock.advance(600)  # ten minutes down: misfire skip lets the missed times go
        await node.schedules.fire_due()
        assert node.metrics is not None
        text = node.metrics.render({}).decode()
        # 2 on time, then back after 600 s: the last 60 s of fire times are within the grace
        # and fire; the 540 before them were missed, and misfire skip lets them go.
        assert 'jobstore_schedule_fires_total{schedule="tick"} 62.0' in text
        assert 'jobstore_schedule_misfires_total{schedule="tick"} 540.0' in text
    finally:
        await node.executor.stop()
