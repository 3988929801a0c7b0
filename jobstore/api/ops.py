"""Operations endpoints: liveness, readiness, Prometheus metrics, and HTTP timing.

Not a facade: plain probes any orchestrator or scraper understands.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstore.core.jobs import JobService
from jobstore.domain.errors import JobstoreError
from jobstore.metrics import CONTENT_TYPE, Metrics


def ops_routes(service: JobService, metrics: Metrics | None) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        """The process is up and its event loop answers; says nothing of the database."""
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """Ready to serve: the database answers and its schema is at the newest revision."""
        ok, checks = await service.readiness()
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics_view(request: Request) -> Response:
        assert metrics is not None
        try:
            active = await service.active_counts()
        except JobstoreError:
            active = {}  # the database is away: still expose this node's own figures
        return Response(metrics.render(active), media_type=CONTENT_TYPE)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", metrics_view, methods=["GET"]))
    else:
        routes.append(
            Route(
                "/metrics",
                lambda r: PlainTextResponse("metrics are off", status_code=404),
                methods=["GET"],
            )
        )
    return routes


class HttpMetricsMiddleware:
    """Times every HTTP request, labelled by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_observed(
                scope["method"], template, status, time.perf_counter() - began
            )
