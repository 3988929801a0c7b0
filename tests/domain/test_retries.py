"""Backoff: doubling from backoff_seconds, with jitter that never lets a wait shrink; or the
wait a handler asks for (JobFailed(retry_after=...))."""

from __future__ import annotations

from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Claimed, Encoding, JobState, Outcome, Payload
from jobstore.domain.retries import DEFAULT_BACKOFF_SECONDS, JITTER, backoff_seconds, with_retry


def test_each_wait_doubles_within_the_jitter_and_stops_at_the_cap() -> None:
    low = [backoff_seconds(2.0, n, cap=100, uniform=lambda a, b: a) for n in range(1, 8)]
    high = [backoff_seconds(2.0, n, cap=100, uniform=lambda a, b: b) for n in range(1, 8)]
    assert low[:5] == [1.6, 3.2, 6.4, 12.8, 25.6]
    assert high[:5] == [2.4, 4.8, 9.6, 19.2, 38.4]
    # The shortest next wait is longer than the longest current one, until the cap.
    assert all(low[n + 1] > high[n] for n in range(5))
    assert low[-1] == high[-1] == 100


def test_no_backoff_given_starts_from_the_default_and_huge_attempts_stay_finite() -> None:
    assert backoff_seconds(None, 1, cap=60, uniform=lambda a, b: 1.0) == DEFAULT_BACKOFF_SECONDS
    assert backoff_seconds(0.0, 3, cap=60) == 0.0
    assert backoff_seconds(1.0, 10_000, cap=60, uniform=lambda a, b: JITTER[0]) == 60


def test_a_retry_after_replaces_the_backoff_and_keeps_to_the_cap() -> None:
    clock = ManualClock()
    job = Claimed(
        job_id=1,
        job_tag="t",
        endpoint="/e",
        request=Payload(Encoding.JSON, text="{}"),
        attempt=1,
        cancel_requested=False,
        max_attempts=3,
        retry_errors=True,
        backoff_seconds=1.0,
    )
    failed = Outcome(JobState.ERROR, status_map={"error_message": "429"})

    def wait(after: float | None) -> float:
        retried = with_retry(job, failed, clock=clock, cap=600, after=after)
        assert retried.retry_at is not None
        return (retried.retry_at - clock.now()).total_seconds()

    assert wait(120) == 120
    assert wait(10**9) == 600
    assert wait(-5) == 0
    assert 0.8 <= wait(None) <= 1.2
