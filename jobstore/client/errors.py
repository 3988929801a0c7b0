"""The errors a call to a node can end in.

RemoteError
├── Unreachable        no answer: connection refused, or timed out
├── ApiError           the node answered with an error: an RFC 9457 problem
│   ├── BadRequest     400  invalid-request, unknown-endpoint
│   ├── Unauthorized   401  unauthorized: no credentials, or wrong ones
│   ├── Forbidden      403  forbidden: an administrator's operation
│   ├── NotFound       404  job-not-found (or another user's job), schedule-not-found,
│   │                       limit-not-found, not-found
│   ├── Conflict       409  tag-conflict, job-not-finished, job-finished, job-not-retryable,
│   │                       schedule-exists, pruning-disabled
│   ├── JobRemoved     410  job-removed: it ended and was deleted (remove_on_complete)
│   └── Unavailable    503  service-unavailable: the node's database did not answer
└── WaitTimeout        wait() ran out of time before the job finished

Any other status (405, 413, 415, 500...) is a plain ApiError. Credentials travel in headers
only and never appear in an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jobstore.client.models import Job


class RemoteError(Exception):
    """Base of the errors a call to a node can end in."""


class Unreachable(RemoteError):
    """The node did not answer."""


class ApiError(RemoteError):
    """The node refused the request. `problem` is its whole problem document (with extension
    members such as `job_id`, `job_status` or `errors`); the RFC 9457 fields are attributes."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.type = str(problem.get("type") or "about:blank")
        self.title = str(problem.get("title") or f"HTTP {status}")
        self.detail = str(problem.get("detail") or "")
        instance = problem.get("instance")
        self.instance = str(instance) if instance is not None else None
        # "Job not found: Job not found: no job ..." says it twice: drop the title then.
        repeats = self.detail.lower().startswith(self.title.lower())
        super().__init__(self.detail if repeats else f"{self.title}: {self.detail}".rstrip(": "))

    @property
    def slug(self) -> str:
        """The last part of `type`, e.g. "tag-conflict"; "" when the node sent no type."""
        return "" if self.type == "about:blank" else self.type.rsplit("/", 1)[-1]


class BadRequest(ApiError):
    """400: a field or parameter the node refused (`problem["errors"]` lists them)."""


class Unauthorized(ApiError):
    """401: authentication is required and the credentials were missing or wrong."""


class Forbidden(ApiError):
    """403: only an administrator may do this."""


class NotFound(ApiError):
    """404: no such job (or another user's), schedule or concurrency key, or no such path."""


class Conflict(ApiError):
    """409: a tag held by a different request, a result not ready, a job already finished,
    a retry of a job that did not end error or cancelled, a schedule name taken; `slug` says
    which."""


class JobRemoved(ApiError):
    """410: the job ended and was deleted (remove_on_complete); `job_status` says how."""

    @property
    def job_status(self) -> str | None:
        status = self.problem.get("job_status")
        return str(status) if status is not None else None


class Unavailable(ApiError):
    """503: the node could not reach its database; try again (a tagged create is safe to)."""


class WaitTimeout(RemoteError, TimeoutError):
    """wait() gave up; `job` is the job as it was last seen (still queued or running)."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g}s")


ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: JobRemoved,
    503: Unavailable,
}


def api_error(response: httpx.Response) -> ApiError:
    """The error for an answer that is not a success, of the class its status calls for."""
    return ERRORS.get(response.status_code, ApiError)(response.status_code, _problem(response))


def unexpected(response: httpx.Response, why: str) -> ApiError:
    """A success answer this client cannot read (not JSON, or not the expected shape)."""
    return ApiError(
        response.status_code, {"title": "Unexpected answer", "detail": f"{_where(response)} {why}"}
    )


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem document, or one made up from a non-JSON error page."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and ("title" in data or "detail" in data):
        return data
    hint = " (is this a jobstore node with the REST API?)" if response.status_code == 404 else ""
    return {
        "title": response.reason_phrase or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": f"{_where(response)}{hint}",
    }


def _where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"
