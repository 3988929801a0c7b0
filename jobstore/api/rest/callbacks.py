"""Callbacks in the REST API: an upstream service completes a job it was handed, or reports its
progress, presenting the token its attempt sent it (header X-Jobstore-Job-Token).

    POST /api/v1/jobs/{id}/complete   {"result": <any JSON>}, {"result_base64": "..."}, or
                                      {"error": "why", "retry": false}; "status_map" optional
    POST /api/v1/jobs/{id}/progress   {"progress": 0-100}

The token is the credential: these two routes take no user sign-in (an upstream has no jobstore
account), and a token opens nothing else. A token that is not the job's is 403; one whose
attempt no longer holds the job (it ended, timed out, or runs again) is 409.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobstore.api.rest.problems import FieldError, JsonResponse, Problem, invalid
from jobstore.codecs import jsontext
from jobstore.core.callbacks import CallbackService, Completion
from jobstore.domain.errors import DecodeError, JobNotFound, TokenRefused
from jobstore.domain.models import Encoding, Payload

TOKEN_HEADER = "X-Jobstore-Job-Token"
MAX_STATUS_ENTRIES = 50
MAX_ERROR_CHARS = 4000

Body = Callable[[Request], Awaitable[Any]]
Guarded = Callable[[Request, None], Awaitable[Response]]
Open = Callable[[Guarded], Callable[[Request], Awaitable[Response]]]


class CallbackApi:
    def __init__(self, callbacks: CallbackService, body: Body, max_job_id: int) -> None:
        self.callbacks = callbacks
        self._body = body
        self._max_job_id = max_job_id

    def routes(self, open_guard: Open) -> list[Route]:
        """The routes, each behind `open_guard` (errors as problems, no user sign-in)."""
        return [
            Route(
                "/api/v1/jobs/{job_id:int}/complete",
                open_guard(self.complete),
                methods=["POST"],
            ),
            Route(
                "/api/v1/jobs/{job_id:int}/progress",
                open_guard(self.progress),
                methods=["POST"],
            ),
        ]

    async def complete(self, request: Request, _: None) -> Response:
        """POST /jobs/{id}/complete: the job's new state (`done`, `error`, or `scheduled` /
        `queued` when its retry rules run it again)."""
        job_id, token = self._target(request)
        completion = parse_completion(await self._body(request))
        state = await self._refusing(self.callbacks.complete(job_id, token, completion))
        return JsonResponse({"id": job_id, "status": state.value})

    async def progress(self, request: Request, _: None) -> Response:
        """POST /jobs/{id}/progress: {"progress": 0-100}."""
        job_id, token = self._target(request)
        body = await self._body(request)
        value = body.get("progress") if isinstance(body, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise invalid([FieldError("body", "progress", "required: a number from 0 to 100")])
        await self._refusing(self.callbacks.progress(job_id, token, int(value)))
        return JsonResponse({"id": job_id, "progress": int(value)})

    def _target(self, request: Request) -> tuple[int, str]:
        job_id: int = request.path_params["job_id"]
        if not 0 < job_id <= self._max_job_id:
            raise JobNotFound(job_id=job_id)
        token = request.headers.get(TOKEN_HEADER, "").strip()
        if not token:
            raise Problem(
                "token-refused",
                f"send the token the job's call carried, in the {TOKEN_HEADER} header",
                {"job_id": job_id},
            )
        return job_id, token

    @staticmethod
    async def _refusing(done: Awaitable[Any]) -> Any:
        try:
            return await done
        except TokenRefused as exc:
            slug = "token-stale" if exc.stale else "token-refused"
            raise Problem(slug, str(exc), {"job_id": exc.job_id}) from None


def parse_completion(body: Any) -> Completion:
    """A completion body, or a 400 naming every bad field."""
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "", "a JSON object is required")])
    known = {"result", "result_base64", "error", "retry", "status_map"}
    errors = [FieldError("body", k, "unknown field") for k in sorted(set(body) - known)]
    given = [k for k in ("result", "result_base64", "error") if k in body]
    if len(given) != 1:
        errors.append(
            FieldError("body", "result", "give one of 'result', 'result_base64' or 'error'")
        )
    status_map = body.get("status_map", {})
    if not (
        isinstance(status_map, dict)
        and len(status_map) <= MAX_STATUS_ENTRIES
        and all(isinstance(v, str) for v in status_map.values())
    ):
        errors.append(
            FieldError(
                "body", "status_map", f"an object of at most {MAX_STATUS_ENTRIES} text values"
            )
        )
    retry = body.get("retry", True)
    if not isinstance(retry, bool):
        errors.append(FieldError("body", "retry", "true or false"))
    if errors:
        raise invalid(errors)
    if "error" in body:
        message = body["error"]
        if not isinstance(message, str) or not message.strip():
            raise invalid([FieldError("body", "error", "a message saying what went wrong")])
        return Completion(error=message[:MAX_ERROR_CHARS], retry=retry, status_map=status_map)
    if "result_base64" in body:
        try:
            data = base64.b64decode(str(body["result_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise invalid([FieldError("body", "result_base64", "not base64")]) from None
        return Completion(result=Payload(Encoding.BINARY, data=data), status_map=status_map)
    try:
        text = jsontext.dumps(body["result"])
        jsontext.check_text(text, what="the result")
    except DecodeError as exc:
        raise invalid([FieldError("body", "result", str(exc))]) from None
    return Completion(result=Payload(Encoding.JSON, text=text), status_map=status_map)
