"""When a failed attempt runs again: exponential backoff with jitter, capped.

The n-th retry waits `backoff_seconds * 2**(n-1)`, times a random factor from 0.8 to 1.2 so
that jobs failing together do not all come back together, and never more than the node's
`--max-backoff-seconds`. With that factor each wait is longer than the one before it (until the
cap): 0.8 * 2 > 1.2.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from jobstore.domain.clock import Clock
from jobstore.domain.models import AttemptOutcome, Claimed, Job, JobState, Outcome

DEFAULT_BACKOFF_SECONDS = 1.0
DEFAULT_MAX_BACKOFF_SECONDS = 3600.0  # the cap of the backoff (a node's --max-backoff-seconds)
JITTER = (0.8, 1.2)


def backoff_seconds(
    base: float | None,
    attempt: int,
    *,
    cap: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """How long to wait after the `attempt`-th run failed before the next one starts."""
    first = DEFAULT_BACKOFF_SECONDS if base is None else base
    # Exponent bounded: 2**1000 is fine as an int, but not as a float.
    grown = first * 2.0 ** min(max(attempt - 1, 0), 60)
    return min(cap, grown * uniform(*JITTER))


def with_retry(
    job: Claimed | Job,
    outcome: Outcome,
    *,
    clock: Clock,
    cap: float,
    retry: bool = True,
    after: float | None = None,
) -> Outcome:
    """`outcome`, set to run the job again after a backoff when its rules allow it.

    Only a failed or timed-out attempt of a job with `retry_errors` and attempts left runs
    again; `retry=False` (JobFailed(..., retry=False)) ends the job now whatever is left.
    `after` (JobFailed(..., retry_after=s)) is the wait instead of the backoff, capped too.
    """
    if not (job.retry_errors and retry and job.attempt < job.max_attempts):
        return outcome
    if outcome.attempt_outcome not in (AttemptOutcome.ERROR, AttemptOutcome.TIMEOUT):
        return outcome
    if after is not None:
        wait = min(cap, max(after, 0.0))
    else:
        wait = backoff_seconds(job.backoff_seconds, job.attempt, cap=cap)
    assert outcome.status is JobState.ERROR
    return replace(outcome, retry_at=clock.now() + timedelta(seconds=wait))
