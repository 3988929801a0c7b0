"""The ASGI application: every facade over one core, and the background services' lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from jobstore.api.cdm import CdmConfig, cdm_routes
from jobstore.api.cdm.definitions import CdmService
from jobstore.api.kinetica import KineticaConfig, kinetica_routes
from jobstore.api.ops import HttpMetricsMiddleware, ops_routes
from jobstore.api.rest import RestConfig, rest_routes
from jobstore.api.ui import UiConfig, ui_routes
from jobstore.core.jobs import JobService
from jobstore.executor.pruner import Pruner
from jobstore.executor.runner import Executor
from jobstore.metrics import Metrics


def create_app(
    service: JobService,
    *,
    executor: Executor | None = None,
    kinetica: KineticaConfig | None = None,
    cdm: tuple[CdmService, CdmConfig] | None = None,
    rest: RestConfig | None = None,
    ui: UiConfig | None = None,
    metrics: Metrics | None = None,
    pruner: Pruner | None = None,
) -> Starlette:
    """Build the app. An executor and a pruner start and stop with the server."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if executor is not None:
            executor.finish_listeners.append(service.job_finished)
            await executor.start()
        if pruner is not None:
            pruner.start()
        try:
            yield
        finally:
            if pruner is not None:
                await pruner.stop()
            if executor is not None:
                await executor.stop()

    # Fixed paths first; the Kinetica routes end in a POST catch-all, so they go last.
    routes: list[BaseRoute] = [
        *ops_routes(service, metrics),
        *rest_routes(service, rest or RestConfig(pruner=pruner)),
        *ui_routes(service, ui or UiConfig()),
        *(cdm_routes(*cdm) if cdm else []),
        *kinetica_routes(service, kinetica),
    ]
    middleware = [Middleware(HttpMetricsMiddleware, metrics=metrics)] if metrics else []
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
