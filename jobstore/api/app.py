"""The ASGI application: every facade over one core, and the executor's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from jobstore.api.cdm import CdmConfig, cdm_routes
from jobstore.api.kinetica import KineticaConfig, kinetica_routes
from jobstore.cdm.service import CdmService
from jobstore.executor.executor import Executor
from jobstore.service import JobService


def create_app(
    service: JobService,
    *,
    executor: Executor | None = None,
    kinetica: KineticaConfig | None = None,
    cdm: tuple[CdmService, CdmConfig] | None = None,
) -> Starlette:
    """Build the app. With an executor, it starts and soft-stops with the server."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if executor is not None:
            await executor.start()
        try:
            yield
        finally:
            if executor is not None:
                await executor.stop()

    # The Kinetica routes end in a POST catch-all, so they go last.
    routes = [*(cdm_routes(*cdm) if cdm else []), *kinetica_routes(service, kinetica)]
    return Starlette(routes=routes, lifespan=lifespan)
