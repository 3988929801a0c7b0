"""The client's schedule methods against a real node, sync and async (see conftest.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobstore.client import BadRequest, Conflict, NotFound, Schedule

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

LATER = datetime(2030, 1, 1, tzinfo=UTC)  # no fire before the test is over


def test_create_read_change_and_delete(client: Any) -> None:
    made = client.create_schedule(
        "hourly",
        "/echo",
        {"n": 1},
        every_seconds=3600,
        start_at=LATER,
        priority=4,
        concurrency_key="customer-7",
        remove_on_complete=True,
    )
    assert isinstance(made, Schedule)
    assert (made.name, made.endpoint, made.encoding, made.payload) == (
        "hourly",
        "/echo",
        "json",
        {"n": 1},
    )
    assert (made.every_seconds, made.cron, made.timezone, made.misfire) == (
        3600.0,
        None,
        "UTC",
        "skip",
    )
    assert made.start_at == LATER and made.next_fire_at == LATER and made.enabled
    assert made.options == {
        "priority": "4",
        "concurrency_key": "customer-7",
        "remove_job_on_complete": "true",
    }
    assert made.remove_on_complete and made.last_job_id is None and made.source == "api"
    assert client.get_schedule("hourly") == made
    assert [s.name for s in client.list_schedules()] == ["hourly"]

    # The fired job below must stay to be read: remove_on_complete goes.
    changed = client.update_schedule(
        "hourly",
        cron="0 9 * * *",
        timezone="Europe/Paris",
        priority=None,
        payload=[2],
        remove_on_complete=False,
    )
    assert (changed.cron, changed.every_seconds, changed.timezone) == (
        "0 9 * * *",
        None,
        "Europe/Paris",
    )
    assert changed.options == {"concurrency_key": "customer-7"}
    assert changed.payload == [2] and not changed.remove_on_complete
    assert changed.next_fire_at == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris

    paused = client.pause_schedule("hourly")
    assert not paused.enabled
    assert client.resume_schedule("hourly").enabled

    job_id = client.fire_schedule("hourly")
    assert isinstance(job_id, int)
    job = client.get(job_id)
    assert job.schedule == "hourly" and job.priority == 0
    assert job.request is not None and job.request.value == [2]
    assert client.get_schedule("hourly").last_job_id == job_id

    assert client.delete_schedule("hourly") is None
    with pytest.raises(NotFound) as missing:
        client.get_schedule("hourly")
    assert missing.value.slug == "schedule-not-found"
    assert client.list_schedules() == []
    assert client.get(job_id).schedule == "hourly"  # its jobs stay


def test_a_binary_schedule(client: Any) -> None:
    made = client.create_schedule(
        "raw", "/echo", payload_bytes=b"\x00\x01", every_seconds=60, start_at=LATER.isoformat()
    )
    assert made.encoding == "binary" and made.payload_bytes == b"\x00\x01"
    assert made.raw["payload_base64"] == base64.b64encode(b"\x00\x01").decode()
    later = client.update_schedule("raw", payload_base64=base64.b64encode(b"\x02").decode())
    assert later.payload_bytes == b"\x02"


def test_refusals(client: Any) -> None:
    client.create_schedule("taken", "/echo", every_seconds=60, start_at=LATER, enabled=False)
    with pytest.raises(Conflict) as taken:
        client.create_schedule("taken", "/echo", every_seconds=60)
    assert taken.value.slug == "schedule-exists" and taken.value.problem["schedule"] == "taken"
    with pytest.raises(BadRequest) as bad:
        client.create_schedule("bad", "/echo", cron="every day")
    assert [e["field"] for e in bad.value.problem["errors"]] == ["cron"]
    with pytest.raises(BadRequest):
        client.update_schedule("taken", every_seconds=0.5)
    for action in ("pause_schedule", "resume_schedule", "delete_schedule", "fire_schedule"):
        with pytest.raises(NotFound):
            getattr(client, action)("nope")

    # Mistakes the client sees before it sends anything.
    with pytest.raises(ValueError, match="time zone"):
        client.create_schedule("naive", "/echo", every_seconds=60, start_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="one payload"):
        client.update_schedule("taken", payload={}, payload_bytes=b"")
    with pytest.raises(TypeError, match="name"):
        client.update_schedule("taken", name="renamed")
    with pytest.raises(TypeError, match="run_at"):
        client.create_schedule("x", "/echo", every_seconds=60, run_at=LATER)
    assert [s.name for s in client.list_schedules()] == ["taken"]
    assert client.get_schedule("taken").updated_at is not None
    assert client.get_schedule("taken").created_at <= datetime.now(UTC) + timedelta(seconds=5)
