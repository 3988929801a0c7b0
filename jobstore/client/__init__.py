"""The Python client of a node's REST API (/api/v1): `Client` blocks, `AsyncClient` awaits.

    from jobstore.client import Client

    with Client("http://127.0.0.1:9191", token="jst_...") as client:
        job = client.create("/sleep", {"seconds": 2}, tag="nap-1")
        done = client.wait(job, timeout=60)
        print(done.status, done.response.value if done.response else None)

Both classes have the same methods with the same arguments and typed results (models.py);
each method is one operation of _operations.py (of _schedules.py for recurring schedules, of
_limits.py for concurrency limits), run with blocking or with async I/O. Errors are in
errors.py. docs/client.md is the guide. This package imports nothing of jobstore but its
version, so applications and the `jobstore jobs` commands load only httpx with it.
"""

from __future__ import annotations

from jobstore.client._async import AsyncClient
from jobstore.client._operations import (
    DEFAULT_URL,
    BulkFilters,
    JobFilters,
    JobOptions,
    JobRef,
    RunOptions,
    safe_url,
)
from jobstore.client._schedules import ScheduleChanges, ScheduleTiming
from jobstore.client._sync import Client
from jobstore.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    JobRemoved,
    NotFound,
    RemoteError,
    Unauthorized,
    Unavailable,
    Unreachable,
    WaitTimeout,
)
from jobstore.client.models import (
    Attempt,
    AttemptOutcome,
    BulkAction,
    BulkResult,
    CancelOutcome,
    CancelResult,
    EndpointInfo,
    EndpointKind,
    EndpointList,
    Job,
    JobPage,
    JobResult,
    JobStatus,
    Limit,
    LimitSource,
    Misfire,
    Payload,
    PruneResult,
    Schedule,
    Stats,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "Attempt",
    "AttemptOutcome",
    "BadRequest",
    "BulkAction",
    "BulkFilters",
    "BulkResult",
    "CancelOutcome",
    "CancelResult",
    "Client",
    "Conflict",
    "EndpointInfo",
    "EndpointKind",
    "EndpointList",
    "Forbidden",
    "Job",
    "JobFilters",
    "JobOptions",
    "JobPage",
    "JobRef",
    "JobRemoved",
    "JobResult",
    "JobStatus",
    "Limit",
    "LimitSource",
    "Misfire",
    "NotFound",
    "Payload",
    "PruneResult",
    "RemoteError",
    "RunOptions",
    "Schedule",
    "ScheduleChanges",
    "ScheduleTiming",
    "Stats",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "WaitTimeout",
    "safe_url",
]
