"""The native JSON REST API under /api/v1: jobs, results, cancel and retry (one job or many),
attempts, listing, stats and pruning; recurring schedules (schedules.py) and concurrency
limits (limits.py).

Every answer is JSON; every error an RFC 9457 problem (see problems.py). The OpenAPI document
(openapi.json) describes exactly these routes, and docs/rest.md explains them to people.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from jobstore.api.body import DEFAULT_MAX_BODY_BYTES, read_body
from jobstore.api.credentials import authenticate, owner_filter
from jobstore.api.documents import (
    attempt_document,
    job_detail,
    job_location,
    job_result,
    job_summary,
)
from jobstore.api.errors import guard
from jobstore.api.rest.callbacks import CallbackApi
from jobstore.api.rest.docs_page import docs_routes
from jobstore.api.rest.inputs import (
    MAX_JOB_ID,
    CreateRequest,
    check_json_media_type,
    parse_bulk,
    parse_create,
    parse_json,
    parse_list,
    parse_prune,
    parse_wait,
)
from jobstore.api.rest.limits import LimitApi, any_text
from jobstore.api.rest.openapi import openapi_document
from jobstore.api.rest.problems import PROBLEM_ERRORS, FieldError, JsonResponse, Problem, invalid
from jobstore.api.rest.schedules import ScheduleApi
from jobstore.core.accounts import Authenticator, Principal
from jobstore.core.callbacks import CallbackService
from jobstore.core.jobs import COUNT_CAP, CreateResult, JobService
from jobstore.core.limits import LimitService
from jobstore.core.schedules import ScheduleService
from jobstore.domain.durations import format_duration
from jobstore.domain.errors import BadOption, DecodeError, JobNotFound, JobRemoved
from jobstore.domain.models import FINAL_STATES, Job, JobState
from jobstore.domain.retries import DEFAULT_MAX_BACKOFF_SECONDS as MAX_BACKOFF_SECONDS

PREFIX = "/api/v1"
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
Handler = Callable[[Request, Principal | None], Awaitable[Response]]


@dataclass(frozen=True)
class RestConfig:
    """Settings of the REST facade."""

    authenticator: Authenticator | None = None  # None: authentication is off
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_wait_seconds: float = 60.0


class RestApi:
    def __init__(
        self,
        service: JobService,
        config: RestConfig,
        schedules: ScheduleService,
        limits: LimitService,
        callbacks: CallbackService,
    ) -> None:
        self.service = service
        self.config = config
        self.document = openapi_document(
            max_wait_seconds=config.max_wait_seconds,
            auth_required=config.authenticator is not None,
            endpoints=service.registry.names(),
        )
        self._routes: list[Route] = [
            Route(f"{PREFIX}/openapi.json", self.openapi, methods=["GET"]),
            *docs_routes(PREFIX),
            Route(f"{PREFIX}/jobs", self._guard(self.create_job), methods=["POST"]),
            Route(f"{PREFIX}/jobs", self._guard(self.list_jobs), methods=["GET"]),
            Route(f"{PREFIX}/jobs/retry", self._guard(self.retry_jobs), methods=["POST"]),
            Route(f"{PREFIX}/jobs/cancel", self._guard(self.cancel_jobs), methods=["POST"]),
            Route(f"{PREFIX}/jobs/tag/{{tag}}", self._guard(self.get_job_by_tag), methods=["GET"]),
            Route(f"{PREFIX}/jobs/{{job_id:int}}", self._guard(self.get_job), methods=["GET"]),
            Route(
                f"{PREFIX}/jobs/{{job_id:int}}/result",
                self._guard(self.get_result),
                methods=["GET"],
            ),
            Route(
                f"{PREFIX}/jobs/{{job_id:int}}/cancel",
                self._guard(self.cancel_job),
                methods=["POST"],
            ),
            Route(
                f"{PREFIX}/jobs/{{job_id:int}}/retry",
                self._guard(self.retry_job),
                methods=["POST"],
            ),
            Route(
                f"{PREFIX}/jobs/{{job_id:int}}/attempts",
                self._guard(self.get_attempts),
                methods=["GET"],
            ),
            Route(f"{PREFIX}/stats", self._guard(self.stats), methods=["GET"]),
            Route(f"{PREFIX}/endpoints", self._guard(self.endpoints), methods=["GET"]),
            Route(f"{PREFIX}/prune", self._guard(self.prune), methods=["POST"]),
            *ScheduleApi(schedules, self._json_body).routes(self._guard),
            *LimitApi(limits, self._json_body).routes(self._guard),
            *CallbackApi(callbacks, self._json_body, MAX_JOB_ID).routes(self._open_guard),
        ]

    def routes(self) -> list[BaseRoute]:
        # The catch-all answers problems (404, 405) for the rest of /api/v1, instead of the
        # plain-text pages of the routes mounted after these.
        fallback = Route(f"{PREFIX}/{{rest:path}}", self._guard(self.fallback), methods=ANY_METHOD)
        return [*self._routes, any_text(fallback)]

    # -- plumbing ---------------------------------------------------------------------------

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, run `handler`, and turn every failure into a problem answer."""

        async def endpoint(request: Request) -> Response:
            return await guard(request, PROBLEM_ERRORS, self._principal, handler)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _open_guard(
        self, handler: Callable[[Request, None], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Like `_guard`, with no user sign-in (the callback routes carry a job token)."""

        async def nobody(request: Request) -> None:
            return None

        async def endpoint(request: Request) -> Response:
            return await guard(request, PROBLEM_ERRORS, nobody, handler)

        endpoint.__name__ = handler.__name__
        return endpoint

    async def _principal(self, request: Request) -> Principal | None:
        return await authenticate(self.config.authenticator, request.headers)

    async def _json_body(self, request: Request) -> Any:
        """The parsed JSON body, or None when there is none (whatever its Content-Type)."""
        try:
            body = await read_body(request, self.config.max_body_bytes)
        except DecodeError as exc:  # read_body's only complaint: the body passed the limit
            raise Problem(
                "payload-too-large", str(exc), {"max_body_bytes": self.config.max_body_bytes}
            ) from None
        if not body.strip():
            return None
        check_json_media_type(request.headers.get("content-type"))
        return parse_json(body, self.service.limits.max_nesting)

    @staticmethod
    def _job_id(request: Request) -> int:
        job_id: int = request.path_params["job_id"]
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id=job_id)
        return job_id

    async def _job(
        self, request: Request, principal: Principal | None, *, job_id: int | None, tag: str | None
    ) -> Job:
        wait = parse_wait(request.query_params.get("wait"), self.config.max_wait_seconds)
        owner = owner_filter(principal)
        if wait > 0:
            return await self.service.wait_for_job(
                job_id=job_id, tag=tag, wait_seconds=wait, visible_to=owner
            )
        return await self.service.get_job(job_id=job_id, tag=tag, visible_to=owner)

    # -- routes -----------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3.1 document; public, so tools can read it before they have credentials."""
        return JsonResponse(self.document)

    async def create_job(self, request: Request, principal: Principal | None) -> Response:
        """POST /jobs: 201 for a new job, 200 for a create repeated under the same tag."""
        body = await self._json_body(request)
        if body is None:
            raise invalid([FieldError("body", "body", "required: a JSON object with an endpoint")])
        create = parse_create(body, request.headers.get("idempotency-key"))
        try:
            result = await self.service.create_job(
                create.endpoint,
                create.payload,
                create.options(),
                created_by=principal.user if principal else None,
                project=principal.project if principal else None,
                source_ip=request.client.host if request.client else None,
            )
        except DecodeError as exc:  # the payload does not fit the endpoint's schema
            raise invalid([FieldError("body", create.payload_field, str(exc))]) from None
        except BadOption as exc:  # out of range, or not allowed here; the field has its name
            raise invalid([FieldError("body", exc.option, exc.reason)]) from None
        summary = await self._created_summary(result, create, principal)
        return JsonResponse(
            summary,
            201 if result.created else 200,
            headers={"Location": job_location(result.job_id)},
        )

    async def _created_summary(
        self, result: CreateResult, create: CreateRequest, principal: Principal | None
    ) -> dict[str, Any]:
        if (written := result.job()) is not None:
            return job_summary(written)  # a new job: as its committed create wrote it
        try:  # a repeated create: the job as it is now
            job = await self.service.get_job(job_id=result.job_id)
        except JobRemoved as gone:
            # A remove_on_complete job can finish and go before we read it back: describe it
            # from its tombstone rather than fail a create that happened.
            job = Job(
                job_id=gone.job_id,
                job_tag=gone.tag,
                endpoint=create.endpoint,
                request_encoding=create.payload.encoding,
                status=JobState(gone.status),
                progress=100 if gone.status == JobState.DONE else 0,
                status_map={},
                created_at=gone.finished_at,
                updated_at=gone.finished_at,
                finished_at=gone.finished_at,
                remove_on_complete=True,
                created_by=principal.user if principal else None,
            )
        return job_summary(job)

    async def get_job(self, request: Request, principal: Principal | None) -> Response:
        """GET /jobs/{id}, long-polling with `wait`."""
        job = await self._job(request, principal, job_id=self._job_id(request), tag=None)
        return JsonResponse(job_detail(job, self.service.registry))

    async def get_job_by_tag(self, request: Request, principal: Principal | None) -> Response:
        """GET /jobs/tag/{tag}, long-polling with `wait`."""
        job = await self._job(request, principal, job_id=None, tag=request.path_params["tag"])
        return JsonResponse(job_detail(job, self.service.registry))

    async def get_result(self, request: Request, principal: Principal | None) -> Response:
        """GET /jobs/{id}/result: the outcome of a finished job; 409 while it runs."""
        job_id = self._job_id(request)
        owner = owner_filter(principal)
        job = await self.service.get_job(job_id=job_id, visible_to=owner, with_request=False)
        if job.status not in FINAL_STATES:
            raise Problem(
                "job-not-finished",
                f"job {job_id} is {job.status.value}; its result is ready when it has finished "
                f"(long-poll GET {job_location(job_id)}?wait=60 to learn when)",
                {"job_id": job_id, "job_status": job.status.value},
            )
        return JsonResponse(
            {
                "id": job.job_id,
                "tag": job.job_tag,
                "status": job.status.value,
                "result": job_result(job, self.service.registry),
                "error": job_summary(job)["error"],
            }
        )

    async def cancel_job(self, request: Request, principal: Principal | None) -> Response:
        """POST /jobs/{id}/cancel: 202 with what happened; 409 for a finished job."""
        job_id = self._job_id(request)
        owner = owner_filter(principal)
        outcome = (await self.service.cancel_jobs([job_id], created_by=owner))[job_id]
        if outcome == "not_found":
            raise JobNotFound(job_id=job_id)
        if outcome == "already_done":
            status: str | None
            try:
                status = (await self.service.get_job(job_id=job_id, visible_to=owner)).status.value
            except JobRemoved as gone:
                status = gone.status
            except JobNotFound:  # pruned in between
                status = None
            raise Problem(
                "job-finished",
                f"job {job_id} has already finished ({status or 'unknown'}); nothing to cancel",
                {"job_id": job_id, "outcome": outcome, "job_status": status},
            )
        return JsonResponse({"id": job_id, "outcome": outcome}, 202)

    async def retry_job(self, request: Request, principal: Principal | None) -> Response:
        """POST /jobs/{id}/retry: run a job that ended error or cancelled again; 200 with the
        job (queued); 409 for a job in any other state."""
        job_id = self._job_id(request)
        job = await self.service.retry_job(job_id, visible_to=owner_filter(principal))
        return JsonResponse(job_detail(job, self.service.registry))

    async def get_attempts(self, request: Request, principal: Principal | None) -> Response:
        """GET /jobs/{id}/attempts: every run of the job, first to last."""
        job_id = self._job_id(request)
        attempts = await self.service.attempts(job_id, visible_to=owner_filter(principal))
        return JsonResponse({"id": job_id, "attempts": [attempt_document(a) for a in attempts]})

    async def retry_jobs(self, request: Request, principal: Principal | None) -> Response:
        """POST /jobs/retry: retry every error/cancelled job the body's filters select."""
        return await self._bulk("retry", request, principal)

    async def cancel_jobs(self, request: Request, principal: Principal | None) -> Response:
        """POST /jobs/cancel: cancel every unfinished job the body's filters select."""
        return await self._bulk("cancel", request, principal)

    async def _bulk(self, action: str, request: Request, principal: Principal | None) -> Response:
        body = await self._json_body(request)
        query = parse_bulk(action, body, created_by=owner_filter(principal))
        result = await self.service.bulk_action(action, query)
        return JsonResponse(
            {
                "action": action,
                "matched": result.matched,
                "outcomes": result.outcomes,
                "more": result.more,
            }
        )

    async def list_jobs(self, request: Request, principal: Principal | None) -> Response:
        """GET /jobs: newest first, one page; `next` fetches the page after it."""
        params = request.query_params.multi_items()
        listing = parse_list(params, created_by=owner_filter(principal))
        jobs = await self.service.search_jobs(listing.query, limit=listing.limit + 1)
        items = jobs[: listing.limit]
        next_before = items[-1].job_id if len(jobs) > listing.limit else None
        next_url = None
        if next_before is not None:
            kept = [(k, v) for k, v in params if k != "before"]
            next_url = f"{PREFIX}/jobs?{urlencode([*kept, ('before', str(next_before))])}"
        return JsonResponse(
            {
                "items": [job_summary(j) for j in items],
                "next": next_url,
                "next_before": next_before,
            }
        )

    async def stats(self, request: Request, principal: Principal | None) -> Response:
        """GET /stats: jobs per state (the caller's own unless admin), capped at COUNT_CAP."""
        counts = await self.service.status_counts(created_by=owner_filter(principal))
        return JsonResponse(
            {"counts": {s.value: counts.get(s, 0) for s in JobState}, "capped_at": COUNT_CAP}
        )

    async def endpoints(self, request: Request, principal: Principal | None) -> Response:
        """GET /endpoints: what jobs this node can run, with their Avro schemas; `kind` says
        what runs each (python, http) and `upstream` the host an http endpoint calls.
        `other_names`: how names nobody declared run (a Kinetica upstream), or null."""
        registry = self.service.registry
        items = [
            {
                "name": ep.name,
                "kind": ep.kind,
                "upstream": ep.upstream,
                "description": ep.description,
                "retryable": ep.retryable,
                "raw": ep.raw,
                "max_attempts": ep.max_attempts,
                "request_schema": ep.request_schema.definition if ep.request_schema else None,
                "response_schema": ep.response_schema.definition if ep.response_schema else None,
            }
            for ep in sorted(registry, key=lambda e: e.name)
        ]
        other = registry.fallback_upstream
        fallback = {"kind": "kinetica-upstream", "upstream": other} if other else None
        return JsonResponse({"items": items, "other_names": fallback})

    async def prune(self, request: Request, principal: Principal | None) -> Response:
        """POST /prune: delete finished jobs past their retention, now (admins only)."""
        if principal is not None and not principal.is_admin:
            raise Problem("forbidden", "only administrators may prune jobs")
        if not self.service.can_prune:
            raise Problem("pruning-disabled", "this node has no pruner; ask another node")
        result = await self.service.prune(parse_prune(await self._json_body(request)))
        applied = result.retention
        return JsonResponse(
            {
                "deleted": {s.value: n for s, n in result.deleted.items()},
                "total": result.total,
                "skipped": result.skipped,
                "retention": {s.value: format_duration(t) for s, t in applied.items()},
            }
        )

    async def fallback(self, request: Request, principal: Principal | None) -> Response:
        """Anything else under /api/v1: 405 on a known path, else 404."""
        allowed: set[str] = set()
        for route in self._routes:
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL and route.methods:
                allowed |= route.methods
        if allowed:
            raise Problem(
                "method-not-allowed",
                f"{request.method} is not allowed on {request.url.path}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        raise Problem(
            "not-found",
            f"no such resource: {request.url.path} (see {PREFIX}/openapi.json)",
        )


def rest_routes(
    service: JobService,
    config: RestConfig,
    schedules: ScheduleService | None = None,
    limits: LimitService | None = None,
    callbacks: CallbackService | None = None,
) -> list[BaseRoute]:
    """The /api/v1 routes, ending in a catch-all for the rest of /api/v1. Without a
    ScheduleService or a LimitService (an app built without a node) the schedule and limit
    routes get their own, over `service`: they serve them, though nothing here fires the
    schedules."""
    schedules = schedules or ScheduleService(service, service.clock)
    limits = limits or LimitService(service, service.clock)
    callbacks = callbacks or CallbackService(service, max_backoff_seconds=MAX_BACKOFF_SECONDS)
    return RestApi(service, config, schedules, limits, callbacks).routes()
