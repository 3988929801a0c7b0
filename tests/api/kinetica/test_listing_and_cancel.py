"""Kinetica /admin/show/jobs and /admin/alter/jobs (cancel)."""

from __future__ import annotations

import time
from typing import Any

from tests.support.kinetica import (
    Env,
)

# -- listing ---------------------------------------------------------------------------------

SHOW_ARRAYS = [
    "job_id",
    "status",
    "endpoint_name",
    "time_received",
    "auth_id",
    "source_ip",
    "query_text",
    "user_data",
    "flags",
]


def _check_parallel(shown: dict[str, Any]) -> int:
    lengths = {name: len(shown[name]) for name in SHOW_ARRAYS}
    assert len(set(lengths.values())) == 1, lengths
    return len(shown["job_id"])


async def test_show_jobs(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    before_ms = int(time.time() * 1000)
    done = await api.create("/echo", "json", '"1"', {"job_tag": "s1"})
    await env.executor.run_once()
    q1 = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "s2"})
    q2 = await api.create("/echo", "binary", b"\x01", {"job_tag": "s3"})
    after_ms = int(time.time() * 1000)

    active = await api.show()
    assert _check_parallel(active) == 2
    assert active["job_id"] == [q1["job_id"], q2["job_id"]]  # oldest first
    assert active["status"] == ["RUNNING", "RUNNING"]
    assert active["endpoint_name"] == ["/sleep", "/echo"]

    everything = await api.show(show_async_jobs="true")
    assert _check_parallel(everything) == 3
    assert everything["job_id"] == [done["job_id"], q1["job_id"], q2["job_id"]]
    assert everything["status"] == ["DONE", "RUNNING", "RUNNING"]
    assert everything["endpoint_name"] == ["/echo", "/sleep", "/echo"]
    times = everything["time_received"]
    assert all(before_ms - 1000 <= t <= after_ms + 1000 for t in times), (before_ms, times)
    assert times == sorted(times)
    assert everything["source_ip"] == ["127.0.0.1"] * 3
    assert everything["user_data"] == ["s1", "s2", "s3"]  # tags, in job_id order
    assert everything["info"]["job_tag"] == "s1,s2,s3"

    assert (await api.show(show_async_jobs="false"))["job_id"] == active["job_id"]
    msg = await api.error("/admin/show/jobs", {"options": {"show_async_jobs": "perhaps"}})
    assert "show_async_jobs" in msg


async def test_show_jobs_empty_and_limit(env: Env) -> None:
    empty = await env.api.show(show_async_jobs="true")
    assert _check_parallel(empty) == 0
    ids = [(await env.api.create("/echo", "json", f'"{i}"'))["job_id"] for i in range(3)]
    limited = await env.api.show(limit="2")
    assert limited["job_id"] == ids[1:]  # the newest two, oldest first
    assert "limit" in await env.api.error("/admin/show/jobs", {"options": {"limit": "0"}})
    assert "limit" in await env.api.error("/admin/show/jobs", {"options": {"limit": "x"}})


async def test_show_jobs_lists_cancelled_and_error_only_with_async(env: Env) -> None:
    f = await env.api.create("/fail", "json", "{}")
    await env.executor.run_once()
    c = await env.api.create("/echo", "json", '"c"')
    await env.api.alter([c["job_id"]])
    assert (await env.api.show())["job_id"] == []
    everything = await env.api.show(show_async_jobs="true")
    assert everything["job_id"] == [f["job_id"], c["job_id"]]
    assert everything["status"] == ["ERROR", "CANCELLED"]


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_queued_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/sleep", "json", '{"seconds": 0}', {"job_tag": "stop-me"})
    job_id = created["job_id"]
    altered = await api.alter([job_id])
    assert altered["job_ids"] == [job_id]
    assert altered["action"] == "cancel"
    assert altered["status"] == ["cancelled"]

    def check(got: dict[str, Any]) -> None:
        assert got["job_status"] == "CANCELLED"
        assert got["running"] is False
        assert got["successful"] is False
        assert got["job_response"] == b"" and got["job_response_str"] == ""
        assert got["status_map"]["error_message"]

    check(await api.get(job_id))
    assert await env.executor.run_once() == []  # never runs
    check(await api.get(job_id))
    assert await env.job_rows() == [(job_id, "stop-me", "cancelled")]
    # cancelling again: it is finished now
    assert (await api.alter([job_id]))["status"] == ["already_done"]


async def test_cancel_statuses_per_job(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    done = await api.create("/echo", "json", '"d"')
    await env.executor.run_once()
    queued = await api.create("/echo", "json", '"q"')
    ids = [queued["job_id"], 999999, done["job_id"]]
    altered = await api.alter(ids, "CANCEL")  # action is case-insensitive
    assert altered["job_ids"] == ids
    assert altered["action"] == "cancel"
    assert altered["status"] == ["cancelled", "not_found", "already_done"]
    assert (await api.get(done["job_id"]))["job_status"] == "DONE"

    assert (await api.alter([424242]))["status"] == ["not_found"]
    empty = await api.alter([])
    assert empty["job_ids"] == [] and empty["status"] == []


async def test_cancel_other_actions_refused(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/echo", "json", '"p"')
    msg = await api.error(
        "/admin/alter/jobs", {"job_ids": [created["job_id"]], "action": "pause", "options": {}}
    )
    assert "'pause'" in msg
    assert "cancel" in msg
    assert (await api.get(created["job_id"]))["job_status"] == "RUNNING"


async def test_cancel_by_tag(env: Env, wire: str) -> None:
    api = env.api.using(wire)
    created = await api.create("/echo", "json", '"t"', {"job_tag": "by-tag"})
    other = await api.create("/echo", "json", '"u"', {"job_tag": "other"})
    altered = await api.alter([], job_tag="by-tag")
    assert altered["job_ids"] == [created["job_id"]]
    assert altered["status"] == ["cancelled"]
    assert (await api.get(0, "by-tag"))["job_status"] == "CANCELLED"
    assert (await api.get(0, "other"))["job_status"] == "RUNNING"
    assert await env.executor.run_once() == [other["job_id"]]
    msg = await api.error(
        "/admin/alter/jobs", {"job_ids": [], "action": "cancel", "options": {"job_tag": "nope"}}
    )
    assert "nope" in msg and "not found" in msg.lower()
