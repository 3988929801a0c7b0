"""jobstore.client and the job engine against a real node: the options of create, retry,
attempts, and the bulk retry and cancel; sync and async (see conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobstore.client import (
    Attempt,
    BadRequest,
    BulkResult,
    Conflict,
    Job,
    JobRemoved,
    NotFound,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def poll(client: Any, job: Job, until: Callable[[Job], bool], timeout: float = 20.0) -> Job:
    """The job once `until` holds (for states a long poll does not wait for, like scheduled)."""
    deadline = time.monotonic() + timeout
    while not until(seen := client.get(job)):
        assert time.monotonic() < deadline, f"job {job.id} is still {seen.status}"
        time.sleep(0.05)
    return seen


# -- create with options ------------------------------------------------------------------------


def test_create_sends_the_options_given(client: Any) -> None:
    before = datetime.now(UTC)
    job = client.create(
        "/echo",
        {"later": True},
        delay_seconds=3600,
        priority=7,
        max_attempts=4,
        retry_errors=True,
        backoff_seconds=2.5,
        timeout_seconds=30,
    )
    assert (job.status, job.finished, job.priority, job.max_attempts) == ("scheduled", False, 7, 4)
    assert (job.retry_errors, job.backoff_seconds, job.timeout_seconds) == (True, 2.5, 30.0)
    assert job.run_at is not None and job.run_at.tzinfo is not None
    assert before + timedelta(minutes=59) < job.run_at < before + timedelta(minutes=61)
    assert (job.attempt, job.last_error) == (0, None)
    assert job.raw["priority"] == 7

    at = datetime(2036, 1, 2, 3, 4, 5, tzinfo=UTC)
    dated = client.create("/echo", run_at=at)
    assert (dated.status, dated.run_at) == ("scheduled", at)
    as_text = client.create("/echo", run_at="2036-01-02T03:04:05Z")
    assert as_text.run_at == at
    assert [j.id for j in client.list(status="scheduled").items] == [as_text.id, dated.id, job.id]

    plain = client.wait(client.create("/echo", {"n": 1}), timeout=20)
    assert (plain.status, plain.priority, plain.run_at) == ("done", 0, None)
    assert (plain.retry_errors, plain.backoff_seconds, plain.timeout_seconds) == (False, None, None)
    assert "priority" not in plain.raw["options"], "an option not given is not sent"
    due = client.create("/echo", {"n": 2}, run_at=datetime.now(UTC) - timedelta(minutes=1))
    assert client.wait(due, timeout=20).status == "done", "a run_at in the past runs at once"


def test_options_the_client_or_the_node_refuses(client: Any) -> None:
    with pytest.raises(ValueError, match="time zone"):
        client.create("/echo", run_at=datetime(2036, 1, 1))
    with pytest.raises(ValueError, match="run_at or delay_seconds, not both"):
        client.create("/echo", run_at="2036-01-01T00:00:00Z", delay_seconds=5)
    with pytest.raises(TypeError, match="unexpected keyword argument prority"):
        client.create("/echo", prority=5)
    with pytest.raises(BadRequest) as refused:
        client.create("/echo", priority=5000)
    assert [e["field"] for e in refused.value.problem["errors"]] == ["priority"]
    with pytest.raises(BadRequest) as late:
        client.create("/echo", run_at="tomorrow")
    assert [e["field"] for e in late.value.problem["errors"]] == ["run_at"]
    assert client.list().items == (), "nothing was created"


# -- retries, timeouts and attempts -------------------------------------------------------------


def test_retry_a_failed_job_and_its_attempts(client: Any) -> None:
    job = client.create("/fail", {"message": "no luck"}, tag="flaky-1")
    failed = client.wait(job, timeout=20)
    assert (failed.status, failed.attempt, failed.error) == ("error", 1, "no luck")
    [first] = client.attempts(job)
    assert isinstance(first, Attempt)
    assert (first.job_id, first.attempt, first.outcome, first.error) == (
        job.id,
        1,
        "error",
        "no luck",
    )
    assert first.node and first.started_at.tzinfo is not None
    assert first.finished_at is not None and first.finished_at >= first.started_at
    assert first.duration_seconds is not None and first.duration_seconds >= 0
    assert first.raw["outcome"] == "error"

    retried = client.retry("flaky-1")
    assert isinstance(retried, Job)
    assert retried.id == job.id and retried.request is not None, "retry answers the job's detail"
    assert retried.status in ("queued", "running", "error")
    again = client.wait(job, timeout=20)
    assert (again.status, again.attempt) == ("error", 2)
    assert [a.attempt for a in client.attempts(job.id)] == [1, 2]
    assert [a.outcome for a in client.attempts("flaky-1")] == ["error", "error"]

    done = client.wait(client.create("/echo", {}), timeout=20)
    with pytest.raises(Conflict) as refused:
        client.retry(done)
    assert (refused.value.slug, refused.value.problem["job_status"]) == (
        "job-not-retryable",
        "done",
    )
    with pytest.raises(NotFound):
        client.retry(424242)
    with pytest.raises(NotFound):
        client.attempts(424242)
    gone = client.create("/fail", remove_on_complete=True)
    with pytest.raises(JobRemoved):
        client.wait(gone, timeout=20)
    with pytest.raises(JobRemoved):
        client.retry(gone.id)


def test_retry_errors_with_backoff_then_the_last_error(client: Any) -> None:
    job = client.create(
        "/fail", {"message": "try again"}, retry_errors=True, max_attempts=2, backoff_seconds=60
    )
    waiting = poll(client, job, lambda j: j.status == "scheduled")
    assert (waiting.attempt, waiting.last_error, waiting.finished) == (1, "try again", False)
    assert waiting.run_at is not None
    assert waiting.run_at > datetime.now(UTC) + timedelta(seconds=30), "backoff about 60 s"
    [attempt] = client.attempts(job)
    assert (attempt.outcome, attempt.error) == ("error", "try again")
    client.cancel(job)
    assert client.get(job).status == "cancelled"


def test_a_run_past_its_timeout_fails(client: Any) -> None:
    job = client.create("/sleep", {"seconds": 30}, timeout_seconds=0.5)
    ended = client.wait(job, timeout=20)
    assert ended.status == "error" and ended.timeout_seconds == 0.5
    assert [a.outcome for a in client.attempts(job)] == ["timeout"]


# -- bulk retry and cancel ----------------------------------------------------------------------


def test_retry_and_cancel_matching(client: Any) -> None:
    failed = [client.create("/fail", {"message": f"no {n}"}) for n in range(2)]
    ok = client.create("/echo", {})
    for job in [*failed, ok]:
        client.wait(job, timeout=20)

    retried = client.retry_matching(status="error", endpoint="/fail")
    assert isinstance(retried, BulkResult)
    assert (retried.action, retried.matched, retried.outcomes, retried.more) == (
        "retry",
        2,
        {"retried": 2},
        False,
    )
    assert retried.raw["outcomes"] == {"retried": 2}
    assert [client.wait(job, timeout=20).attempt for job in failed] == [2, 2]
    assert client.get(ok).attempt == 1, "a done job is not retried"
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert client.retry_matching(created_before=hour_ago).matched == 0
    assert client.retry_matching(status=["error"], created_after=hour_ago).matched == 2
    assert client.retry_matching(endpoint="/nowhere").outcomes == {}

    later = [client.create("/echo", {"n": n}, delay_seconds=3600) for n in range(2)]
    cancelled = client.cancel_matching(status=("scheduled", "queued"), endpoint="/echo")
    assert (cancelled.action, cancelled.matched, cancelled.outcomes) == (
        "cancel",
        2,
        {"cancelled": 2},
    )
    assert [client.get(job).status for job in later] == ["cancelled", "cancelled"]
    assert client.retry_matching(status="cancelled").matched == 2


def test_bulk_filters_the_client_or_the_node_refuses(client: Any) -> None:
    with pytest.raises(ValueError, match="at least one filter"):
        client.retry_matching()
    with pytest.raises(ValueError, match="at least one filter"):
        client.cancel_matching(status=[])
    with pytest.raises(TypeError, match="unexpected keyword argument tag"):
        client.cancel_matching(tag="x")
    with pytest.raises(ValueError, match="time zone"):
        client.retry_matching(created_after=datetime(2025, 1, 1))
    with pytest.raises(BadRequest) as refused:
        client.cancel_matching(status="done")
    assert [e["field"] for e in refused.value.problem["errors"]] == ["status"]
