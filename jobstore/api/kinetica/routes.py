"""Kinetica job API routes. Every answer is a `gpudb_response` envelope.

API errors are ERROR envelopes with HTTP 400 (never 404 or 500: the official client treats those
as "this node is down" and fails over, or loops when it has nowhere to go). The one 5xx is 503,
for a database out of reach: there, failing over is what the client should do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from jobstore import __version__
from jobstore.api.body import DEFAULT_MAX_BODY_BYTES, read_body
from jobstore.api.credentials import NotAuthenticated, authenticate, owner_filter
from jobstore.api.errors import guard
from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.api.kinetica.wire import WireEncoding
from jobstore.core.accounts import Authenticator, Principal
from jobstore.core.jobs import JobService, parse_bool
from jobstore.domain.errors import BadRequest, StoreUnavailable
from jobstore.domain.models import ACTIVE_STATES, Encoding, Job, Payload

PING_TEXT = "Kinetica is running!"
# The official client needs four numeric parts; 7.2 keeps it from warning about versions.
SERVER_VERSION = "7.2.3.0"
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 100_000
_QUERY_ID_NAMESPACE = uuid.UUID("6a6f6273-746f-7265-2d6b-696e65746963")

Handler = Callable[[Request, dict[str, Any], "Principal | None"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class KineticaConfig:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    public_url: str | None = None  # else derived from the request's Host header
    ha_peers: tuple[str, ...] = ()  # head URLs of the other nodes sharing the database
    authenticator: Authenticator | None = None  # None: authentication is off


def kinetica_status(job: Job) -> str:
    """Kinetica's view of a state: every unfinished one (scheduled, queued, running) is RUNNING.

    Kinetica has no word for a job waiting for its time (a delay, or a retry's backoff): it
    has not finished, so it is RUNNING. A running job with a cancel request reads CANCELLED:
    it will be recorded cancelled whatever its handler does (see JobStore.job_finish).
    """
    if job.status in ACTIVE_STATES:
        return "CANCELLED" if job.cancel_requested else "RUNNING"
    return job.status.value.upper()


class EnvelopeErrors:
    """Failures as ERROR envelopes in the request's wire encoding (the renderer for guard).

    An unexpected error is a 400 too, never a 500: the client would fail over, or loop. A store
    outage is a 503, which makes the client retry, then fail over; our status endpoint says
    "not running" meanwhile, so the client never loops on this node.
    """

    own_errors: tuple[type[Exception], ...] = ()

    def unauthorized(self, request: Request, exc: NotAuthenticated) -> Response:
        message = "authentication required: send valid Basic credentials or a Bearer token"
        headers = {"WWW-Authenticate": 'Basic realm="jobstore", Bearer'}
        return _error_envelope(request, message, 401, headers)

    def client_error(
        self, request: Request, exc: Exception, principal: Principal | None
    ) -> Response:
        return _error_envelope(request, str(exc))

    def unavailable(
        self, request: Request, exc: StoreUnavailable, principal: Principal | None
    ) -> Response:
        return _error_envelope(request, str(exc), 503)  # nothing was committed

    def internal(self, request: Request, principal: Principal | None) -> Response:
        return _error_envelope(request, f"internal error while serving {request.url.path}")


ENVELOPE_ERRORS = EnvelopeErrors()


def _error_envelope(
    request: Request, message: str, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    wire_enc = WireEncoding.from_content_type(request.headers.get("content-type"))
    return Response(
        wire.encode_error(message, wire_enc),
        status,
        headers=headers,
        media_type=wire_enc.response_media_type,
    )


class KineticaApi:
    def __init__(self, service: JobService, config: KineticaConfig) -> None:
        self.service = service
        self.config = config
        self.handlers: dict[str, Handler] = {
            "/create/job": self.create_job,
            "/get/job": self.get_job,
            "/admin/show/jobs": self.show_jobs,
            "/admin/alter/jobs": self.alter_jobs,
            "/show/system/status": self.system_status,
            "/show/system/properties": self.system_properties,
        }

    # -- dispatch ---------------------------------------------------------------------------

    def find(self, path: str) -> str | None:
        """Exact path, or a known endpoint at the end of it (a client URL with a path prefix)."""
        if path in self.handlers:
            return path
        for name in self.handlers:
            if path.endswith(name):
                return name
        return None

    async def dispatch(self, request: Request) -> Response:
        return await guard(request, ENVELOPE_ERRORS, self._principal, self._serve)

    async def wrong_method(self, request: Request) -> Response:
        """A Kinetica endpoint called with GET (a browser, curl without -d): say how to call it.

        405 with `Allow: POST`, as an ERROR envelope: the official client only POSTs, and would
        read any answer but 404 and 5xx as a plain error anyway.
        """
        name = self.find(request.url.path) or request.url.path
        message = f"{name} takes POST, not {request.method}; only the ping (GET /) takes GET"
        return _error_envelope(request, message, 405, {"Allow": "POST"})

    async def _principal(self, request: Request) -> Principal | None:
        return await authenticate(self.config.authenticator, request.headers)

    async def _serve(self, request: Request, principal: Principal | None) -> Response:
        wire_enc = WireEncoding.from_content_type(request.headers.get("content-type"))
        name = self.find(request.url.path)
        if name is None:
            raise BadRequest(f"unknown Kinetica endpoint {request.url.path!r}")
        body = await read_body(request, self.config.max_body_bytes)
        req_schema, rsp_schema = ENDPOINTS[name]
        record = wire.decode_request(body, wire_enc, req_schema)
        answer = await self.handlers[name](request, record, principal)
        content = wire.encode_ok(answer, wire_enc, rsp_schema)
        return Response(content, 200, media_type=wire_enc.response_media_type)

    # -- job endpoints ----------------------------------------------------------------------

    async def create_job(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        raw_encoding = req["request_encoding"].strip().lower()
        try:
            encoding = Encoding(raw_encoding)
        except ValueError:
            raise BadRequest(
                f"unknown request_encoding {req['request_encoding']!r}: use binary, json or snappy"
            ) from None
        if encoding is Encoding.JSON:
            if req["data"]:
                raise BadRequest("request_encoding 'json' takes its request in data_str, not data")
            payload = Payload(encoding, text=req["data_str"])
        else:
            if req["data_str"]:
                raise BadRequest(
                    f"request_encoding {encoding.value!r} takes its request in data, not data_str"
                )
            payload = Payload(encoding, data=req["data"])
        result = await self.service.create_job(
            req["endpoint"],
            payload,
            req["options"],
            source_ip=request.client.host if request.client else None,
            created_by=principal.user if principal else None,
            project=principal.project if principal else None,
        )
        query_id = uuid.uuid5(_QUERY_ID_NAMESPACE, f"{result.job_id}:{result.job_tag}")
        return {
            "job_id": result.job_id,
            "info": {"job_tag": result.job_tag, "query_id": str(query_id)},
        }

    async def get_job(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        tag = req["options"].get("job_tag") or None
        job = await self.service.get_job(
            job_id=req["job_id"], tag=tag, visible_to=owner_filter(principal), with_request=False
        )
        status = kinetica_status(job)
        family = (job.response_encoding or job.request_encoding.response_encoding).value
        data = job.response_data or b""
        text = job.response_text or ""
        if status != "DONE":
            data, text = b"", ""
        return {
            "endpoint": job.endpoint,
            "job_status": status,
            "running": status == "RUNNING",
            "progress": job.progress,
            "successful": status == "DONE",
            "response_encoding": family,
            "job_response": data,
            "job_response_str": text,
            "status_map": job.status_map,
            "info": {"job_tag": job.job_tag, "job_id": str(job.job_id)},
        }

    async def show_jobs(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        options = req["options"]
        include_done = parse_bool(options.get("show_async_jobs", "false"), name="show_async_jobs")
        limit = _positive_int(
            options.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", maximum=MAX_LIST_LIMIT
        )
        jobs = await self.service.list_jobs(
            states=None if include_done else ACTIVE_STATES,
            limit=limit,
            created_by=owner_filter(principal),
        )
        jobs.reverse()  # oldest first, as Kinetica lists them
        return {
            "job_id": [j.job_id for j in jobs],
            "status": [kinetica_status(j) for j in jobs],
            "endpoint_name": [j.endpoint for j in jobs],
            "time_received": [int(j.created_at.timestamp() * 1000) for j in jobs],
            "auth_id": [j.created_by or "" for j in jobs],
            "source_ip": [j.source_ip or "" for j in jobs],
            "query_text": ["" for _ in jobs],
            "user_data": [j.job_tag for j in jobs],
            "flags": [j.status.value for j in jobs],
            "info": {"job_tag": ",".join(j.job_tag for j in jobs)},
        }

    async def alter_jobs(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        action = req["action"].strip().lower()
        if action != "cancel":
            raise BadRequest(f"unsupported action {req['action']!r}: only 'cancel' is supported")
        job_ids = list(req["job_ids"])
        tag = req["options"].get("job_tag")
        if tag:
            job = await self.service.get_job(tag=tag, visible_to=owner_filter(principal))
            job_ids = [job.job_id]
        statuses = await self.service.cancel_jobs(job_ids, created_by=owner_filter(principal))
        # A running job with a cancel request will end cancelled; say so as Kinetica would.
        shown = {"cancel_requested": "cancelled"}
        return {
            "job_ids": job_ids,
            "action": action,
            "status": [shown.get(statuses[i], statuses[i]) for i in job_ids],
            "info": {},
        }

    # -- handshake --------------------------------------------------------------------------

    async def system_status(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        # "running" only when this node can really serve: a client probing for a usable
        # cluster must move on from a node whose database is out of reach.
        state = "running" if await self.service.ready() else "database_unavailable"
        return {
            "status_map": {
                "system": json.dumps({"status": state}),
                "ha_status": json.dumps({"drained": "not_drained"}),
            },
            "info": {},
        }

    async def system_properties(
        self, request: Request, req: dict[str, Any], principal: Principal | None
    ) -> dict[str, Any]:
        # This node's own identity only: the client tells clusters apart by host name.
        public = self.config.public_url or f"{request.url.scheme}://{request.url.netloc}"
        properties = {
            "version.gpudb_core_version": SERVER_VERSION,
            "version.jobstore": __version__,
            "conf.number_of_hosts": "1",
            "conf.host0_public_urls": public.rstrip("/"),
            "conf.enable_ha": "TRUE" if self.config.ha_peers else "FALSE",
        }
        if self.config.ha_peers:
            properties["conf.ha_ring_head_nodes_full"] = ";".join(self.config.ha_peers)
        return {"property_map": properties, "info": {}}


def _positive_int(value: str, name: str, *, maximum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"option {name!r} must be a whole number, got {value!r}") from None
    if not 1 <= number <= maximum:
        raise BadRequest(f"option {name!r} must be between 1 and {maximum}")
    return number


class _OtherMethods(Route):
    """The catch-all for a known Kinetica endpoint's path with any method but POST.

    It matches nothing else, so other paths keep their own routes' 405s and 404s.
    """

    METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS")

    def __init__(self, api: KineticaApi) -> None:
        super().__init__("/{path:path}", api.wrong_method, methods=list(self.METHODS))
        self._api = api

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.FULL:  # POST (the other catch-all's), or an unusual method
            return Match.NONE, {}
        if self._api.find("/" + str(child["path_params"].get("path", ""))) is None:
            return Match.NONE, {}
        return match, child


def kinetica_routes(service: JobService, config: KineticaConfig | None = None) -> list[BaseRoute]:
    """The ping, each known path, then a POST catch-all for a known endpoint at the end of a
    longer path (a client URL with a prefix).

    The same paths with another method are answered with an ERROR envelope (405).
    """
    api = KineticaApi(service, config or KineticaConfig())

    async def ping(request: Request) -> Response:
        return PlainTextResponse(PING_TEXT)

    # The known paths as routes of their own: found in one lookup, and each labelled with its
    # own path in /metrics. The catch-all serves paths with a prefix (/gpudb-0/get/job).
    return [
        Route("/", ping, methods=["GET"]),
        *(Route(path, api.dispatch, methods=["POST"]) for path in api.handlers),
        Route("/{path:path}", api.dispatch, methods=["POST"]),
        _OtherMethods(api),
    ]
