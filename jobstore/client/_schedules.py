"""The client's schedule operations, as flows in the manner of _operations.py: the requests of
/api/v1/schedules and how their answers are read."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypedDict
from urllib.parse import quote

from jobstore.client._operations import Flow, Request, RunOptions, check_names, check_zone, read
from jobstore.client.models import Misfire, Schedule


class ScheduleTiming(TypedDict, total=False):
    """When a schedule fires: `cron` (5 fields, or 6 with seconds first) read in `timezone`
    (an IANA zone, default UTC), or every `every_seconds` (>= 1) counted from `start_at`; no
    fire before `start_at` or after `end_at` (datetimes with a time zone, or RFC 3339). Missed
    fire times are skipped, fired once or all (`misfire`, default skip). `enabled=False`
    pauses it."""

    cron: str | None
    every_seconds: float | None
    timezone: str | None
    misfire: Misfire | None
    start_at: datetime | str | None
    end_at: datetime | str | None
    enabled: bool


class ScheduleChanges(ScheduleTiming, total=False):
    """What update_schedule may change: the job each fire creates, and when it fires. A
    keyword given as None puts the field back to its default (`payload=None` is the JSON
    payload null); one not given stays as it is."""

    endpoint: str
    payload: Any
    payload_bytes: bytes
    payload_base64: str
    encoding: str
    remove_on_complete: bool | None
    priority: int | None
    max_attempts: int | None
    retry_errors: bool | None
    backoff_seconds: float | None
    timeout_seconds: float | None
    concurrency_key: str | None


def _path(name: str, action: str = "") -> str:
    return f"/schedules/{quote(name, safe='')}{action}"


def _times(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its datetimes as RFC 3339 (each with a time zone, or ValueError)."""
    for name in ("start_at", "end_at"):
        if isinstance(when := body.get(name), datetime):
            check_zone(name, when)
            body[name] = when.isoformat()
    return body


def _payload(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with `payload_bytes` sent as base64; one payload at most."""
    named = [n for n in ("payload", "payload_bytes", "payload_base64") if n in body]
    if len(named) > 1:
        raise ValueError(f"give one payload, not {' and '.join(named)}")
    if isinstance(data := body.pop("payload_bytes", None), bytes):
        body["payload_base64"] = base64.b64encode(data).decode("ascii")
    return body


def create_schedule(
    name: str,
    endpoint: str,
    payload: Any,
    *,
    payload_bytes: bytes | None,
    payload_base64: str | None,
    encoding: str | None,
    remove_on_complete: bool,
    timing: ScheduleTiming,
    options: RunOptions,
) -> Flow[Schedule]:
    check_names(timing, ScheduleTiming)
    check_names(options, RunOptions)
    given = {"payload": payload, "payload_bytes": payload_bytes, "payload_base64": payload_base64}
    body: dict[str, Any] = {"name": name, "endpoint": endpoint}
    body.update({k: v for k, v in given.items() if v is not None})
    if encoding is not None:
        body["encoding"] = encoding
    if remove_on_complete:
        body["remove_on_complete"] = True
    body.update({k: v for k, v in {**timing, **options}.items() if v is not None})
    response = yield Request("POST", "/schedules", json=_times(_payload(body)))
    return read(response, Schedule.from_json)


def list_schedules() -> Flow[list[Schedule]]:
    response = yield Request("GET", "/schedules")
    return read(response, Schedule.list_from_json)


def get_schedule(name: str) -> Flow[Schedule]:
    response = yield Request("GET", _path(name))
    return read(response, Schedule.from_json)


def update_schedule(name: str, changes: ScheduleChanges) -> Flow[Schedule]:
    check_names(changes, ScheduleChanges)
    body = _times(_payload(dict(changes)))
    response = yield Request("PATCH", _path(name), json=body)
    return read(response, Schedule.from_json)


def set_enabled(name: str, enabled: bool) -> Flow[Schedule]:
    response = yield Request("POST", _path(name, "/resume" if enabled else "/pause"))
    return read(response, Schedule.from_json)


def delete_schedule(name: str) -> Flow[None]:
    yield Request("DELETE", _path(name))


def fire_schedule(name: str) -> Flow[int]:
    response = yield Request("POST", _path(name, "/fire"))
    return read(response, lambda doc: int(doc["job_id"]))
