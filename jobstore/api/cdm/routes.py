"""Huawei CDM's job API under /v1.1/{project_id}/clusters/{cluster_id}/cdm/.

Every route needs `X-Auth-Token` (a jobstore token scoped to the project). Auth failures use the
API gateway's body (`error_code`, `error_msg`, `request_id`); everything else uses CDM's
(`errCode`, `externalMessage`, `code`, `message`), with HTTP 400 for the client's mistakes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from jobstore.api.body import DEFAULT_MAX_BODY_BYTES, read_body
from jobstore.api.cdm.definitions import (
    CdmError,
    CdmService,
    Definition,
    Started,
    SubmissionRow,
    scheduled,
)
from jobstore.api.credentials import X_AUTH_TOKEN, NotAuthenticated, authenticate
from jobstore.api.errors import guard
from jobstore.codecs import jsontext
from jobstore.core.accounts import Authenticator, Principal
from jobstore.domain.errors import ClientError, StoreUnavailable

BASE = "/v1.1/{project_id}/clusters/{cluster_id}/cdm"
SQOOP_COUNTERS = "org.apache.sqoop.submission.counter.SqoopCounters"
COUNTER_NAMES = (
    "BYTES_READ",
    "BYTES_WRITTEN",
    "ROWS_READ",
    "ROWS_WRITTEN",
    "ROWS_WRITTEN_SKIPPED",
    "FILES_READ",
    "FILES_WRITTEN",
    "FILES_SKIPPED",
    "TOTAL_FILES",
    "TOTAL_SIZE",
)
# jobstore state -> CDM submission status. A stopped run is FAILED: CDM's API has no STOPPED.
# A scheduled run (delayed, or waiting to retry after a failed attempt) has not started yet.
STATUS = {
    "scheduled": "BOOTING",
    "queued": "BOOTING",
    "running": "RUNNING",
    "done": "SUCCEEDED",
    "error": "FAILED",
    "cancelled": "FAILED",
}

Handler = Callable[[Request, Principal], Awaitable[Response]]


@dataclass(frozen=True)
class CdmConfig:
    authenticator: Authenticator
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def cdm_error(code: str, message: str, status: int = 400) -> JSONResponse:
    body = {"errCode": code, "externalMessage": message, "code": code, "message": message}
    return JSONResponse(body, status)


def gateway_error(code: str, message: str, status: int) -> JSONResponse:
    body = {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex}
    return JSONResponse(body, status)


class CdmErrors:
    """Failures as CDM answers (the renderer for errors.guard): the API gateway's body for
    credentials, CDM's for everything else."""

    own_errors: tuple[type[Exception], ...] = ()

    def unauthorized(self, request: Request, exc: NotAuthenticated) -> Response:
        why = "decrypt token fail" if exc.presented else "x-auth-token not found"
        return gateway_error("APIGW.0301", f"Incorrect IAM authentication information: {why}", 401)

    def client_error(
        self, request: Request, exc: Exception, principal: Principal | None
    ) -> Response:
        if isinstance(exc, CdmError):
            return cdm_error(exc.code, str(exc), exc.status)
        return cdm_error("Cdm.0014", f"Invalid parameter: {exc}")

    def unavailable(
        self, request: Request, exc: StoreUnavailable, principal: Principal | None
    ) -> Response:
        return cdm_error("Cdm.0000", f"System error: {exc}", 503)

    def internal(self, request: Request, principal: Principal | None) -> Response:
        return cdm_error("Cdm.0000", "System error.", 500)


CDM_ERRORS = CdmErrors()


# -- views: jobstore records in CDM's words ---------------------------------------------------


def _base_submission(
    job_id: int,
    name: str,
    status: str,
    progress: float,
    user: str | None,
    created: int | None,
    executed: int | None,
    updated: int | None,
    is_delete: bool,
    auto: bool,
) -> dict[str, Any]:
    return {
        "submission-id": job_id,
        "job-name": name,
        "status": status,
        "progress": progress,
        "creation-user": user or "",
        "creation-date": created,
        "execute-date": executed,
        "last-update-date": updated,
        "last-udpate-user": user or "",  # sic: CDM's own spelling, kept for its clients
        "last-update-user": user or "",
        "isIncrementing": False,
        "isStopingIncrement": "",
        "is-execute-auto": auto,
        "isDeleteJob": is_delete,
        "delete_rows": 0,
        "update_rows": 0,
        "write_rows": 0,
    }


def started_view(started: Started) -> dict[str, Any]:
    at = _ms(started.at)
    return _base_submission(
        started.job_id,
        started.job_name,
        "BOOTING",
        0.0,
        started.user,
        at,
        at,
        at,
        started.is_delete_job,
        started.is_execute_auto,
    )


def submission_view(row: SubmissionRow, auto: bool = False) -> dict[str, Any]:
    """A submission; `auto`: its definition runs on a schedule."""
    status = STATUS.get(row.status, "UNKNOWN")
    if status == "SUCCEEDED":
        progress = 100.0
    elif status == "FAILED":
        progress = -1.0
    else:
        progress = float(row.progress)
    created = _ms(row.created_at)
    view = _base_submission(
        row.job_id,
        row.job_name,
        status,
        progress,
        row.created_by,
        created,
        _ms(row.started_at) or created,
        _ms(row.finished_at) or _ms(row.updated_at) or created,
        row.is_delete_job,
        auto,
    )
    view["external-id"] = row.job_tag
    if status == "SUCCEEDED":
        view["counters"] = {SQOOP_COUNTERS: _counters(row.response_text)}
    if status == "FAILED":
        if row.status == "cancelled":
            summary = "The job was stopped by the user."
        else:
            summary = row.status_map.get("error_message") or "The job failed."
        view["error-summary"] = summary
        view["error-details"] = f"{summary} (jobstore job {row.job_id}, state {row.status})"
    return view


def _counters(response_text: str | None) -> dict[str, int]:
    """-1 (not applicable) unless the endpoint's answer carries a `counters` object."""
    counters = dict.fromkeys(COUNTER_NAMES, -1)
    try:
        answer = json.loads(response_text) if response_text else None
    except ValueError:
        answer = None
    given = answer.get("counters") if isinstance(answer, dict) else None
    if isinstance(given, dict):
        for key in COUNTER_NAMES:
            if isinstance(given.get(key), int):
                counters[key] = given[key]
    return counters


def never_executed_view(definition: Definition) -> dict[str, Any]:
    return {
        "job-name": definition.name,
        "status": "NEVER_EXECUTED",
        "creation-user": definition.created_by or "",
        "creation-date": _ms(definition.created_at),
    }


def definition_view(definition: Definition) -> dict[str, Any]:
    view = dict(definition.definition)
    view.update(
        {
            "name": definition.name,
            "job_type": definition.job_type,
            "type": definition.job_type,
            "id": definition.cdm_job_id,
            "creation-user": definition.created_by or "",
            "creation-date": _ms(definition.created_at),
            "update-user": definition.updated_by or "",
            "update-date": _ms(definition.updated_at),
            "is-execute-auto": scheduled(definition.definition),
        }
    )
    return view


# -- the API ----------------------------------------------------------------------------------


class CdmApi:
    def __init__(self, service: CdmService, config: CdmConfig) -> None:
        self.service = service
        self.config = config

    def route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, check the project and cluster, and answer every error as CDM does."""
        scoped = self._scoped(handler)

        async def endpoint(request: Request) -> Response:
            return await guard(request, CDM_ERRORS, self._principal, scoped)

        return endpoint

    async def _principal(self, request: Request) -> Principal:
        return await authenticate(self.config.authenticator, request.headers, X_AUTH_TOKEN)

    def _scoped(self, handler: Handler) -> Handler:
        """`handler`, for a caller of the path's project on this cluster only."""

        async def scoped(request: Request, principal: Principal) -> Response:
            project = request.path_params["project_id"]
            if principal.project != project and not (
                principal.is_admin and principal.project is None
            ):
                return gateway_error(
                    "APIGW.0302",
                    f"The IAM user is not authorized to access project {project}",
                    403,
                )
            _check_path(request.path_params)
            self.service.check_cluster(request.path_params["cluster_id"])
            return await handler(request, principal)

        return scoped

    async def _body(self, request: Request, *, required: bool) -> Any:
        body = await read_body(request, self.config.max_body_bytes)
        if not body.strip():
            if required:
                raise CdmError("Cdm.0014", "Invalid parameter: a JSON body is required")
            return {}
        return jsontext.loads(body, what="body", max_nesting=self.service.jobs.limits.max_nesting)

    async def _jobs_list(self, request: Request) -> list[Any]:
        body = await self._body(request, required=True)
        jobs = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(jobs, list) or not jobs:
            raise CdmError("Cdm.0014", "Invalid parameter: the body needs a non-empty 'jobs' list")
        return jobs

    @staticmethod
    def _scope(request: Request) -> tuple[str, str]:
        return request.path_params["project_id"], request.path_params["cluster_id"]

    # -- routes -----------------------------------------------------------------------------

    async def create(self, request: Request, principal: Principal) -> Response:
        names = await self.service.create(
            *self._scope(request), await self._jobs_list(request), principal.user
        )
        return JSONResponse({"name": names[0], "validation-result": [{} for _ in names]})

    async def query(self, request: Request, principal: Principal) -> Response:
        project, cluster = self._scope(request)
        name = request.path_params["job_name"]
        if name != "all":
            definition = await self.service.get(project, cluster, name)
            return JSONResponse(
                {"total": 1, "jobs": [definition_view(definition)], "page_no": 1, "page_size": 10}
            )
        params = request.query_params
        page_no = _int_param(params.get("page_no"), "page_no", 1, 1, 1_000_000)
        page_size = _int_param(params.get("page_size"), "page_size", 10, 1, 100)
        job_type = params.get("jobType") or "NORMAL_JOB"
        total, found = await self.service.list_definitions(
            project,
            cluster,
            name_filter=params.get("filter"),
            job_type=job_type,
            page_no=page_no,
            page_size=page_size,
        )
        return JSONResponse(
            {
                "total": total,
                "jobs": [definition_view(d) for d in found],
                "page_no": page_no,
                "page_size": page_size,
            }
        )

    async def modify(self, request: Request, principal: Principal) -> Response:
        jobs = await self._jobs_list(request)
        if len(jobs) != 1:
            raise CdmError("Cdm.0014", "Invalid parameter: modify takes exactly one job")
        await self.service.modify(
            *self._scope(request), request.path_params["job_name"], jobs[0], principal.user
        )
        return JSONResponse({"validation-result": []})

    async def delete(self, request: Request, principal: Principal) -> Response:
        await self.service.delete(*self._scope(request), request.path_params["job_name"])
        return JSONResponse({})

    async def start(self, request: Request, principal: Principal) -> Response:
        body = await self._body(request, required=False)
        variables = body.get("variables", {}) if isinstance(body, dict) else None
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool)
            for k, v in variables.items()
        ):
            raise CdmError(
                "Cdm.0014", "Invalid parameter: 'variables' must map names to string values"
            )
        started = await self.service.start(
            *self._scope(request),
            request.path_params["job_name"],
            {k: str(v) for k, v in variables.items()},
            principal.user,
        )
        return JSONResponse({"submissions": [started_view(started)]})

    async def stop(self, request: Request, principal: Principal) -> Response:
        name = request.path_params["job_name"]
        if await self.service.stop(*self._scope(request), name):
            return JSONResponse({"validation-result": []})
        warning = {"message": f"Job[{name}] is not running.", "status": "WARNING"}
        return JSONResponse({"validation-result": [warning]})

    async def status(self, request: Request, principal: Principal) -> Response:
        _, rows, definition = await self.service.submissions(
            *self._scope(request), request.path_params["job_name"]
        )
        if not rows and definition is not None:
            return JSONResponse({"submissions": [never_executed_view(definition)]})
        auto = definition is not None and scheduled(definition.definition)
        return JSONResponse({"submissions": [submission_view(r, auto) for r in rows]})

    async def history(self, request: Request, principal: Principal) -> Response:
        params = request.query_params
        name = params.get("jname")
        if not name:
            raise CdmError("Cdm.0014", "Invalid parameter: 'jname' is required")
        _check_path({"job_name": name})
        page_no = _int_param(params.get("page_no", params.get("page")), "page_no", 1, 1, 10**6)
        page_size = _int_param(params.get("page_size", params.get("size")), "page_size", 10, 1, 100)
        total, rows, definition = await self.service.submissions(
            *self._scope(request), name, page_no=page_no, page_size=page_size
        )
        auto = definition is not None and scheduled(definition.definition)
        return JSONResponse(
            {
                "submissions": [submission_view(r, auto) for r in rows],
                "total": total,
                "page_no": page_no,
                "page_size": page_size,
            }
        )


_PATH_LIMITS = {"project_id": 128, "cluster_id": 128, "job_name": 240}


def _check_path(params: dict[str, Any]) -> None:
    for name, limit in _PATH_LIMITS.items():
        value = params.get(name)
        if value is None:
            continue
        if not 1 <= len(value) <= limit:
            raise CdmError("Cdm.0014", f"Invalid parameter: {name} must be 1 to {limit} characters")
        try:
            jsontext.check_text(value, what=name)
        except ClientError as exc:
            raise CdmError("Cdm.0014", f"Invalid parameter: {exc}") from None


def _int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise CdmError(
            "Cdm.0009", f"{name} is not an integer or is beyond [{low}, {high}]."
        ) from None
    if not low <= number <= high:
        raise CdmError("Cdm.0010", f"The integer must be within [{low}, {high}]: {name}")
    return number


def cdm_routes(service: CdmService, config: CdmConfig) -> list[BaseRoute]:
    api = CdmApi(service, config)

    async def unknown(request: Request) -> Response:
        return gateway_error(
            "APIGW.0101",
            "The API does not exist or has not been published in the environment.",
            404,
        )

    wrap = api.route
    return [
        Route(f"{BASE}/job", wrap(api.create), methods=["POST"]),
        Route(f"{BASE}/job/{{job_name}}", wrap(api.query), methods=["GET"]),
        Route(f"{BASE}/job/{{job_name}}", wrap(api.modify), methods=["PUT"]),
        Route(f"{BASE}/job/{{job_name}}", wrap(api.delete), methods=["DELETE"]),
        Route(f"{BASE}/job/{{job_name}}/start", wrap(api.start), methods=["PUT"]),
        Route(f"{BASE}/job/{{job_name}}/stop", wrap(api.stop), methods=["PUT"]),
        Route(f"{BASE}/job/{{job_name}}/status", wrap(api.status), methods=["GET"]),
        Route(f"{BASE}/submissions", wrap(api.history), methods=["GET"]),
        Route("/v1.1/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
