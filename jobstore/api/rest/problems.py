"""RFC 9457 problem details: every error the REST API answers, and the JSON it renders.

Each problem type has a slug; its `type` is the relative URI `/api/v1/problems/<slug>`. The table
below is the one list of them: the routes raise them, the OpenAPI document and docs/rest.md
describe them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobstore.api.credentials import NotAuthenticated
from jobstore.api.documents import iso
from jobstore.core.accounts import Principal
from jobstore.domain.errors import (
    JobNotFound,
    JobNotRetryable,
    JobRemoved,
    LimitNotFound,
    ScheduleExists,
    ScheduleNotFound,
    StoreUnavailable,
    TagConflict,
    UnknownEndpoint,
)
from jobstore.domain.inputs import BadInput

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/api/v1/problems/"
RETRY_AFTER_SECONDS = 5
AUTH_CHALLENGE = 'Basic realm="jobstore", Bearer realm="jobstore"'

# slug -> (HTTP status, title)
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "invalid-request": (400, "The request is not valid"),
    "unknown-endpoint": (400, "No such endpoint"),
    "unauthorized": (401, "Authentication required"),
    "forbidden": (403, "Not allowed"),
    "token-refused": (403, "Job token refused"),
    "not-found": (404, "No such resource"),
    "job-not-found": (404, "Job not found"),
    "schedule-not-found": (404, "Schedule not found"),
    "limit-not-found": (404, "Concurrency limit not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "tag-conflict": (409, "Tag already in use"),
    "job-not-finished": (409, "Job not finished"),
    "job-finished": (409, "Job already finished"),
    "job-not-retryable": (409, "Job cannot be retried"),
    "schedule-exists": (409, "Schedule name already in use"),
    "token-stale": (409, "Job token no longer valid"),
    "pruning-disabled": (409, "Pruning is not available on this node"),
    "job-removed": (410, "Job removed"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "internal-error": (500, "Internal error"),
    "service-unavailable": (503, "Database unavailable"),
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad input: where it was (`body`, `query`, `header`, `path`), its name, and why."""

    location: str
    name: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"in": self.location, "field": self.name, "message": self.message}


class Problem(Exception):
    """An error answer; raise it from a route and the API renders it."""

    def __init__(
        self,
        slug: str,
        detail: str,
        extensions: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {slug!r}")
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return PROBLEM_TYPES[self.slug][0]

    def body(self, instance: str) -> dict[str, Any]:
        status, title = PROBLEM_TYPES[self.slug]
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": title,
            "status": status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
        }

    def response(self, instance: str) -> Response:
        return Response(
            render_json(self.body(instance)),
            self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def invalid(errors: list[FieldError], detail: str | None = None) -> Problem:
    """A 400 listing every bad field."""
    if detail is None:
        detail = "; ".join(f"{e.name}: {e.message}" for e in errors) or "invalid request"
    return Problem("invalid-request", detail, {"errors": [e.as_json() for e in errors]})


def unauthorized() -> Problem:
    return Problem(
        "unauthorized",
        "authentication required: send valid Basic credentials or a Bearer token",
        headers={"WWW-Authenticate": AUTH_CHALLENGE},
    )


def unavailable() -> Problem:
    return Problem(
        "service-unavailable",
        "the database did not answer; try again later (a create with a tag is safe to repeat)",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def from_client_error(exc: Exception) -> Problem:
    """The problem for an error the core raised because of the client's input."""
    if isinstance(exc, JobRemoved):
        return Problem(
            "job-removed",
            str(exc),
            {
                "job_id": exc.job_id,
                "tag": exc.tag,
                "job_status": exc.status,
                "finished_at": iso(exc.finished_at),
            },
        )
    if isinstance(exc, JobNotRetryable):
        return Problem(
            "job-not-retryable", str(exc), {"job_id": exc.job_id, "job_status": exc.status}
        )
    if isinstance(exc, JobNotFound):
        found: dict[str, Any] = {"job_id": exc.job_id} if exc.tag is None else {"tag": exc.tag}
        return Problem("job-not-found", str(exc), found)
    if isinstance(exc, TagConflict):
        conflict: dict[str, Any] = {"tag": exc.tag}
        if exc.job_id is not None:
            conflict["job_id"] = exc.job_id
        return Problem("tag-conflict", str(exc), conflict)
    if isinstance(exc, ScheduleNotFound):
        return Problem("schedule-not-found", str(exc), {"schedule": exc.name})
    if isinstance(exc, ScheduleExists):
        return Problem("schedule-exists", str(exc), {"schedule": exc.name})
    if isinstance(exc, LimitNotFound):
        return Problem("limit-not-found", str(exc), {"key": exc.key})
    if isinstance(exc, UnknownEndpoint):
        return Problem("unknown-endpoint", str(exc), {"endpoint": exc.endpoint})
    if isinstance(exc, BadInput):  # refused at the door: name where
        return invalid([FieldError(exc.location, exc.name, exc.reason)], str(exc))
    return invalid([], str(exc))  # BadRequest and anything else the client caused


class ProblemErrors:
    """Failures as problem documents (the REST facade's renderer for errors.guard)."""

    own_errors: tuple[type[Exception], ...] = (Problem,)

    def unauthorized(self, request: Request, exc: NotAuthenticated) -> Response:
        return unauthorized().response(request.url.path)

    def client_error(
        self, request: Request, exc: Exception, principal: Principal | None
    ) -> Response:
        problem = exc if isinstance(exc, Problem) else from_client_error(exc)
        return problem.response(request.url.path)

    def unavailable(
        self, request: Request, exc: StoreUnavailable, principal: Principal | None
    ) -> Response:
        return unavailable().response(request.url.path)

    def internal(self, request: Request, principal: Principal | None) -> Response:
        instance = request.url.path
        detail = f"internal error while serving {request.method} {instance}"
        return Problem("internal-error", detail).response(instance)


PROBLEM_ERRORS = ProblemErrors()


def render_json(content: Any) -> bytes:
    """UTF-8 JSON; values JSON cannot carry (NaN, lone surrogates) are made safe, not a 500."""
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # also UnicodeEncodeError: a decoded Avro payload may hold anything
        return json.dumps(_finite(content), allow_nan=False).encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)
