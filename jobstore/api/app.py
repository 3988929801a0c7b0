"""The ASGI application: every facade over one core, and the background services' lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from jobstore.api.boundary import InputBoundary
from jobstore.api.cdm import BASE as CDM_BASE
from jobstore.api.cdm import CDM_ERRORS, CdmConfig, cdm_routes
from jobstore.api.cdm.definitions import CdmService
from jobstore.api.errors import Renderer
from jobstore.api.kinetica import ENVELOPE_ERRORS, KineticaConfig, kinetica_routes
from jobstore.api.ops import HttpMetricsMiddleware, ops_routes
from jobstore.api.rest import PROBLEM_ERRORS, RestConfig, rest_routes
from jobstore.api.routing import FixedPathRouter
from jobstore.api.ui import Dashboard, UiConfig
from jobstore.core.callbacks import CallbackService
from jobstore.core.jobs import JobService
from jobstore.core.limits import LimitService
from jobstore.core.schedules import ScheduleService
from jobstore.metrics import Metrics

App = Starlette  # what create_app builds: an ASGI application


class Background(Protocol):
    """A service that runs while the app serves (the executor, the retention pass)."""

    async def start(self) -> object: ...

    async def stop(self) -> None: ...


def create_app(
    service: JobService,
    *,
    background: Sequence[Background] = (),
    kinetica: KineticaConfig | None = None,
    cdm: tuple[CdmService, CdmConfig] | None = None,
    rest: RestConfig | None = None,
    ui: UiConfig | None = None,
    metrics: Metrics | None = None,
    schedules: ScheduleService | None = None,
    limits: LimitService | None = None,
    callbacks: CallbackService | None = None,
) -> Starlette:
    """Build the app. `background` services start in order with the server, stop in reverse."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[Background] = []
        try:
            for each in background:
                await each.start()
                started.append(each)
            yield
        finally:
            for each in reversed(started):
                await each.stop()

    dashboard = Dashboard(service, ui or UiConfig(), schedules, limits)
    # Fixed paths first; the Kinetica routes end in a POST catch-all, so they go last.
    routes: list[BaseRoute] = [
        *ops_routes(service, metrics),
        *rest_routes(service, rest or RestConfig(), schedules, limits, callbacks),
        *dashboard.routes(),
        *(cdm_routes(*cdm) if cdm else []),
        *kinetica_routes(service, kinetica),
    ]
    # Each facade's paths, for the boundary's refusals in its dialect; Kinetica's have no
    # common prefix. The operations paths answer as REST does.
    cdm_prefix = CDM_BASE.split("{", 1)[0]
    dialects: list[tuple[str, Renderer]] = [
        ("/api/", PROBLEM_ERRORS),
        ("/ui", dashboard.errors),
        (cdm_prefix, CDM_ERRORS),
        *((path, PROBLEM_ERRORS) for path in ("/healthz", "/readyz", "/metrics")),
    ]
    boundary = Middleware(
        InputBoundary,
        limits=service.limits,
        dialects=dialects,
        fallback=ENVELOPE_ERRORS,
        id_prefixes=("/api/", "/ui/"),  # the routes with {job_id:int}
    )
    # The metrics count refused requests too: they wrap the boundary.
    counted = [Middleware(HttpMetricsMiddleware, metrics=metrics)] if metrics else []
    app = Starlette(lifespan=lifespan, middleware=[*counted, boundary])
    app.router = FixedPathRouter(routes, lifespan=lifespan)
    return app
