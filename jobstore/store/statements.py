"""Statement pieces both drivers and the job repositories share."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from jobstore.domain.models import Claimed, Encoding, JobState, Payload
from jobstore.store.tables import jobs

QUEUED, RUNNING = JobState.QUEUED.value, JobState.RUNNING.value
SCHEDULED = JobState.SCHEDULED.value
# Literal, not bound: PostgreSQL can only prove a partial index (WHERE status = 'queued')
# applies under a generic prepared plan when the predicate is a constant.
IS_QUEUED = jobs.c.status == sa.literal_column("'queued'")
IS_RUNNING = jobs.c.status == sa.literal_column("'running'")
IS_SCHEDULED = jobs.c.status == sa.literal_column("'scheduled'")
# The plain claim takes jobs without a concurrency key only (the rows ix_jobs_queued holds).
HAS_NO_KEY = jobs.c.concurrency_key.is_(None)
# The claim's order, which ix_jobs_queued holds: highest priority first, then oldest.
CLAIM_ORDER = (jobs.c.priority.desc(), jobs.c.job_id)


def claim_update(
    *where: sa.ColumnElement[bool], node: Any, now: Any, lease_until: Any
) -> sa.Update:
    """Move the queued jobs `where` selects to running, owned by `node` (values or binds)."""
    return (
        sa.update(jobs)
        .where(*where)
        .values(
            status=RUNNING,
            owner=node,
            attempt=jobs.c.attempt + 1,
            lease_expires_at=lease_until,
            started_at=now,
            updated_at=now,
        )
        .returning(
            jobs.c.job_id,
            jobs.c.job_tag,
            jobs.c.endpoint,
            jobs.c.request_encoding,
            jobs.c.request_data,
            jobs.c.request_text,
            jobs.c.attempt,
            jobs.c.cancel_requested,
            jobs.c.max_attempts,
            jobs.c.retry_errors,
            jobs.c.backoff_seconds,
            jobs.c.timeout_seconds,
            jobs.c.concurrency_key,
        )
    )


def claimed_from_row(r: Any) -> Claimed:
    """A claimed job from a row that `claim_update` returned."""
    return Claimed(
        job_id=r.job_id,
        job_tag=r.job_tag,
        endpoint=r.endpoint,
        request=Payload(Encoding(r.request_encoding), r.request_data, r.request_text),
        attempt=r.attempt,
        cancel_requested=r.cancel_requested,
        max_attempts=r.max_attempts,
        retry_errors=r.retry_errors,
        backoff_seconds=r.backoff_seconds,
        timeout_seconds=r.timeout_seconds,
        concurrency_key=r.concurrency_key,
    )


# -- set-based completion -----------------------------------------------------------------
# One UPDATE records a whole batch of outcomes, joined to a row set `v` that each driver
# builds (typed arrays through unnest, or a VALUES list). Only placeholders are generated.

# (job_id, attempt, status, status_map as JSON text, done, response encoding, data, text,
#  the attempt's outcome, its error message)
FinishRow = tuple[int, int, str, str, bool, str | None, bytes | None, str | None, str, str | None]
FINISH_COLUMNS = (
    "job_id", "attempt", "status", "status_map", "done", "renc", "rdata", "rtext",
    "aoutcome", "aerror",
)  # fmt: skip
FINISH_SET = """
    status = CASE WHEN jobs.cancel_requested THEN 'cancelled' ELSE v.status END,
    status_map = CASE WHEN jobs.cancel_requested THEN {cancel_map} ELSE {status_map} END,
    progress = CASE WHEN jobs.cancel_requested THEN jobs.progress
                    WHEN v.done THEN 100 ELSE jobs.progress END,
    response_encoding = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.renc END,
    response_data = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.rdata END,
    response_text = CASE WHEN jobs.cancel_requested THEN NULL ELSE v.rtext END,
    lease_expires_at = NULL,
    finished_at = :now,
    updated_at = :now
"""
# {running}: the text 'running' is compared to. SQLite's finish compares a column of its
# VALUES list instead of the constant (sqlite.py, _finish, says why).
FINISH_WHERE = """
WHERE jobs.job_id = v.job_id AND jobs.attempt = v.attempt AND jobs.status = {running}
"""
FINISH_RETURNING = "RETURNING jobs.job_id, jobs.attempt, jobs.status, jobs.remove_on_complete"

# Closing attempts, set-based: joined to a row set `v` (job_id, attempt, outcome, error). The
# caller has just moved these jobs (rescue, requeue, reschedule) in the same transaction: what
# it says the run's outcome was wins over anything written before (a SQLite trigger's guess).
AttemptRow = tuple[int, int, str, str | None]
ATTEMPT_COLUMNS = ("job_id", "attempt", "outcome", "error")
ATTEMPTS_CLOSE = """
UPDATE job_attempts SET finished_at = :now, outcome = v.outcome, error_message = v.error
FROM v
WHERE job_attempts.job_id = v.job_id AND job_attempts.attempt = v.attempt
"""
CANCEL_MESSAGE = "cancelled on request"


def cancel_map() -> dict[str, str]:
    return {"error_message": CANCEL_MESSAGE}
