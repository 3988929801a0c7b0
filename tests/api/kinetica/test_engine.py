"""The engine's per-job options through Kinetica's /create/job, and how its `scheduled` state
reads: delayed jobs and jobs waiting to retry are RUNNING until they end, and can be cancelled.

In-process over each wire and database, on a ManualClock (the `timed_env` fixture): time moves
when a test says so, and the scheduler is driven like the executor.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from jobstore.domain.clock import ManualClock
from tests.support.kinetica import WIRES, Api, Env, assert_done, assert_running

CANCEL_MESSAGE = "cancelled on request"

# (options, a fragment the message must contain besides the option's name); every value here
# travels as a string in every wire, as the official client sends options.
BAD_OPTIONS = [
    pytest.param({"priority": "x"}, "priority", "got 'x'", id="priority-not-a-number"),
    pytest.param({"priority": "5000"}, "priority", "from -1000 to 1000", id="priority-too-high"),
    pytest.param({"priority": "1.5"}, "priority", "got '1.5'", id="priority-fraction"),
    pytest.param({"delay_seconds": "-1"}, "delay_seconds", "got '-1'", id="delay-negative"),
    pytest.param({"delay_seconds": "1e400"}, "delay_seconds", "'1e400'", id="delay-infinite"),
    pytest.param({"run_at": "tomorrow"}, "run_at", "RFC 3339", id="run_at-words"),
    pytest.param(
        {"run_at": "2030-01-01T00:00:00"}, "run_at", "no time zone", id="run_at-without-zone"
    ),
    pytest.param(
        {"run_at": "2030-01-01T00:00:00Z", "delay_seconds": "5"},
        "run_at",
        "'delay_seconds' cannot both be given",
        id="run_at-and-delay",
    ),
    pytest.param({"retry_errors": "maybe"}, "retry_errors", "true or false", id="retry-maybe"),
    pytest.param({"timeout_seconds": "0"}, "timeout_seconds", "more than 0", id="timeout-zero"),
    pytest.param({"max_attempts": "0"}, "max_attempts", "from 1 to 1000", id="attempts-zero"),
    pytest.param({"max_attempts": "1001"}, "max_attempts", "got 1001", id="attempts-too-many"),
    pytest.param({"backoff_seconds": "nan"}, "backoff_seconds", "'nan'", id="backoff-nan"),
]


@pytest.mark.parametrize(("options", "name", "fragment"), BAD_OPTIONS)
async def test_bad_engine_options_are_refused_naming_the_option(
    timed_env: Env, options: dict[str, str], name: str, fragment: str
) -> None:
    """An ERROR envelope with HTTP 400 (the client's mistake: no retry, no failover), in every
    wire; the message names the option and what is wrong; nothing is stored."""
    record = Api.create_record("/echo", "json", '"x"', {"job_tag": "bad-option", **options})
    for wire in WIRES:
        reply = await timed_env.api.using(wire).call("/create/job", record)
        assert reply.http_status == 400 and not reply.ok, (wire, reply.envelope)
        assert f"option '{name}'" in reply.message, (wire, reply.message)
        assert fragment in reply.message, (wire, reply.message)
    assert await timed_env.job_rows() == []


async def test_a_bad_option_message_in_full(timed_env: Env) -> None:
    msg = await timed_env.api.create_error("/echo", "json", '"x"', {"priority": "x"})
    assert msg == "option 'priority' must be an integer from -1000 to 1000, got 'x'"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"priority": 5000}, "priority"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"max_attempts": 2.5}, "max_attempts"),
    ],
)
async def test_bad_engine_options_as_json_numbers(
    timed_env: Env, options: dict[str, Any], name: str
) -> None:
    """The JSON wire takes numbers as option values (as their text): the same rules apply."""
    body = {
        "endpoint": "/echo",
        "request_encoding": "json",
        "data": "",
        "data_str": '"x"',
        "options": options,
    }
    reply = await timed_env.api.post("/create/job", json.dumps(body).encode())
    assert reply.http_status == 400 and not reply.ok
    assert f"option '{name}'" in reply.message
    assert await timed_env.job_rows() == []


async def test_retry_errors_refused_for_an_endpoint_that_never_runs_twice(
    timed_env: Env, wire: str
) -> None:
    msg = await timed_env.api.using(wire).create_error(
        "/once", "json", '"x"', {"retry_errors": "true"}
    )
    assert "option 'retry_errors'" in msg and "/once is not retryable" in msg
    assert await timed_env.job_rows() == []


async def test_empty_engine_options_are_not_set(timed_env: Env, wire: str) -> None:
    """Kinetica clients send "" for an option they do not set: the job runs at once with the
    defaults."""
    api = timed_env.api.using(wire)
    blanks = dict.fromkeys(
        ("run_at", "delay_seconds", "priority", "max_attempts", "retry_errors"), ""
    )
    blanks.update(backoff_seconds="", timeout_seconds=" ")
    created = await api.create("/echo", "json", '"now"', {"job_tag": "blanks", **blanks})
    job = await timed_env.service.get_job(job_id=created["job_id"])
    assert (job.status.value, job.priority, job.run_at, job.retry_errors) == (
        "queued",
        0,
        None,
        False,
    )
    assert (job.backoff_seconds, job.timeout_seconds, job.max_attempts) == (None, None, 3)
    assert await timed_env.executor.run_once() == [created["job_id"]]
    assert_done(await api.get(created["job_id"]), "/echo", "json")


# -- scheduled jobs read RUNNING -------------------------------------------------------------


async def test_delayed_job_reads_running_until_due_then_runs(
    timed_env: Env, clock: ManualClock, wire: str
) -> None:
    api = timed_env.api.using(wire)
    options = {"job_tag": "later", "delay_seconds": "60", "priority": "5"}
    created = await api.create("/echo", "json", '"later"', options)
    job_id = created["job_id"]
    job = await timed_env.service.get_job(job_id=job_id)
    assert (job.status.value, job.priority) == ("scheduled", 5)
    assert job.run_at == clock.now() + timedelta(seconds=60)

    assert_running(await api.get(job_id), "/echo", "json", "later")
    shown = await api.show()  # the default listing: every unfinished job
    assert (shown["job_id"], shown["status"], shown["flags"]) == (
        [job_id],
        ["RUNNING"],
        ["scheduled"],
    )
    assert await timed_env.executor.run_once() == []  # not due: nothing to claim

    clock.advance(59)
    assert await timed_env.executor.scheduler.run_once() == 0
    assert_running(await api.get(job_id), "/echo", "json", "later")

    clock.advance(1)
    assert await timed_env.executor.scheduler.run_once() == 1
    assert await timed_env.executor.run_once() == [job_id]
    got = await api.get(job_id)
    assert_done(got, "/echo", "json")
    assert got["job_response_str"] == '"later"'
    assert got["status_map"] == {}
    assert (await api.show())["job_id"] == []


async def test_run_at_schedules_at_that_instant(timed_env: Env, clock: ManualClock) -> None:
    api = timed_env.api
    at = clock.now() + timedelta(minutes=5)
    assert at.isoformat() == "2026-01-01T00:05:00+00:00"
    utc = await api.create("/echo", "json", '"u"', {"run_at": "2026-01-01T00:05:00Z"})
    offset = await api.create("/echo", "json", '"o"', {"run_at": "2026-01-01T02:05:00+02:00"})
    past = await api.create("/echo", "json", '"p"', {"run_at": "2025-12-31T23:59:59Z"})
    for created in (utc, offset):
        job = await timed_env.service.get_job(job_id=created["job_id"])
        assert (job.status.value, job.run_at) == ("scheduled", at)
        assert (await api.get(created["job_id"]))["job_status"] == "RUNNING"
    # A time that has passed: queued at once.
    assert (await timed_env.service.get_job(job_id=past["job_id"])).status.value == "queued"
    assert await timed_env.executor.run_once() == [past["job_id"]]
    clock.advance(300)
    assert await timed_env.executor.scheduler.run_once() == 2
    assert sorted(await timed_env.executor.run_once()) == [utc["job_id"], offset["job_id"]]


async def test_engine_options_are_not_part_of_a_creates_identity(timed_env: Env) -> None:
    """A re-sent create (same tag, endpoint and payload) is answered with the first job, even
    with other engine options; the first job keeps its own."""
    first = await timed_env.api.create("/echo", "json", '"x"', {"job_tag": "t", "priority": "5"})
    again = await timed_env.api.create(
        "/echo", "json", '"x"', {"job_tag": "t", "priority": "7", "delay_seconds": "60"}
    )
    assert again["job_id"] == first["job_id"]
    job = await timed_env.service.get_job(job_id=first["job_id"])
    assert (job.status.value, job.priority) == ("queued", 5)


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_scheduled_job_at_once(timed_env: Env, clock: ManualClock, wire: str) -> None:
    api = timed_env.api.using(wire)
    created = await api.create(
        "/sleep", "json", '{"seconds": 0}', {"job_tag": "wait", "delay_seconds": "600"}
    )
    by_tag = await api.create("/echo", "json", '"t"', {"job_tag": "wait-2", "delay_seconds": "600"})
    job_id = created["job_id"]

    altered = await api.alter([job_id])
    assert (altered["job_ids"], altered["action"], altered["status"]) == (
        [job_id],
        "cancel",
        ["cancelled"],
    )
    assert (await api.alter([], job_tag="wait-2"))["status"] == ["cancelled"]
    for got in (await api.get(job_id), await api.get(0, "wait-2")):
        assert (got["job_status"], got["running"], got["successful"]) == ("CANCELLED", False, False)
        assert got["status_map"] == {"error_message": CANCEL_MESSAGE}
        assert got["job_response"] == b"" and got["job_response_str"] == ""
    assert await timed_env.job_rows() == [
        (job_id, "wait", "cancelled"),
        (by_tag["job_id"], "wait-2", "cancelled"),
    ]
    assert (await api.show())["job_id"] == []

    # Its time comes and goes: it never runs.
    clock.advance(600)
    assert await timed_env.executor.scheduler.run_once() == 0
    assert await timed_env.executor.run_once() == []
    assert await timed_env.sql("SELECT attempt FROM jobs ORDER BY job_id") == [(0,), (0,)]
    assert (await api.alter([job_id]))["status"] == ["already_done"]


# -- retries: a job waiting for its next attempt is RUNNING ---------------------------------


async def test_failed_attempt_waiting_to_retry_reads_running_and_ends_as_any_job(
    timed_env: Env, clock: ManualClock, wire: str
) -> None:
    api = timed_env.api.using(wire)
    request = '{"message": "flaky disk"}'
    options = {"retry_errors": "true", "max_attempts": "2", "backoff_seconds": "30"}
    retried = (await api.create("/fail", "json", request, {"job_tag": "retried", **options}))[
        "job_id"
    ]
    plain = (await api.create("/fail", "json", request, {"job_tag": "plain"}))["job_id"]
    assert sorted(await timed_env.executor.run_once()) == [retried, plain]

    # Attempt 1 failed; the job waits 24 to 36 s (30 s, +-20 % jitter) for attempt 2.
    assert await timed_env.sql("SELECT status, attempt FROM jobs WHERE job_id = :i", i=retried) == [
        ("scheduled", 1)
    ]
    waiting = await api.get(retried)
    assert (waiting["job_status"], waiting["running"], waiting["successful"]) == (
        "RUNNING",
        True,
        False,
    )
    assert waiting["progress"] == 0
    assert waiting["job_response"] == b"" and waiting["job_response_str"] == ""
    assert waiting["status_map"] == {"last_error": "flaky disk"}  # why it is taking longer
    shown = await api.show()
    assert (shown["job_id"], shown["status"], shown["flags"]) == (
        [retried],
        ["RUNNING"],
        ["scheduled"],
    )

    clock.advance(23)
    assert await timed_env.executor.scheduler.run_once() == 0
    clock.advance(13)
    assert await timed_env.executor.scheduler.run_once() == 1
    assert await timed_env.executor.run_once() == [retried]

    # No attempts left: it ends ERROR, and reads exactly as the job that never retried.
    final, expected = await api.get(retried), await api.get(plain)
    assert final["job_status"] == "ERROR"
    assert final["status_map"] == {"error_message": "flaky disk"}
    assert {k: v for k, v in final.items() if k != "info"} == {
        k: v for k, v in expected.items() if k != "info"
    }
    assert await timed_env.sql("SELECT status, attempt FROM jobs WHERE job_id = :i", i=retried) == [
        ("error", 2)
    ]


async def test_retry_that_succeeds_reads_done_without_the_earlier_error(
    timed_env: Env, clock: ManualClock, wire: str
) -> None:
    api = timed_env.api.using(wire)
    options = {"job_tag": "flaky", "retry_errors": "true", "backoff_seconds": "10"}
    job_id = (await api.create("/flaky", "json", '{"n": 1}', options))["job_id"]
    assert await timed_env.executor.run_once() == [job_id]
    waiting = await api.get(job_id)
    assert waiting["job_status"] == "RUNNING"
    assert waiting["status_map"] == {"last_error": "the first attempt fails"}

    clock.advance(12)  # 10 s, +-20 %
    assert await timed_env.executor.scheduler.run_once() == 1
    assert await timed_env.executor.run_once() == [job_id]
    got = await api.get(job_id)
    assert_done(got, "/flaky", "json")
    assert got["job_response_str"] == '{"n": 1}'
    assert got["status_map"] == {}
