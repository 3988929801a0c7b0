"""The composition root: the one place that builds a node from its settings.

`jobstore serve`, `jobstore worker` and the tests all build nodes here, so the executor, the
core services, the retention pass and the facades are wired the same way everywhere:

    settings -> Database -> endpoint registry -> events, metrics
             -> DatabaseClock, Executor, Pruner (background services of the node)
             -> JobService, Authenticator, CdmService (the core and CDM's dialect over it)
             -> the ASGI app with every facade (serve only)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jobstore.api.app import App, create_app
from jobstore.api.cdm import CdmConfig
from jobstore.api.cdm.definitions import CdmService
from jobstore.api.kinetica import KineticaConfig
from jobstore.api.rest import RestConfig
from jobstore.api.ui import UiConfig
from jobstore.cli.settings import Settings
from jobstore.core.accounts import Authenticator
from jobstore.core.callbacks import CallbackService
from jobstore.core.jobs import JobService
from jobstore.core.limits import LimitService
from jobstore.core.schedules import ScheduleService
from jobstore.domain.clock import Clock
from jobstore.domain.events import JobEvents
from jobstore.endpoints.registry import EndpointRegistry, default_registry
from jobstore.executor.pruner import Pruner
from jobstore.executor.runner import Executor
from jobstore.metrics import Metrics
from jobstore.store import Database, migrate_to_head
from jobstore.store.clock import DatabaseClock
from jobstore.store.migrate import require_schema
from jobstore.upstream.config import load_endpoints_file
from jobstore.upstream.http import Upstreams
from jobstore.upstream.kinetica import KineticaUpstream, upstream_endpoint

log = logging.getLogger("jobstore")


@dataclass
class Node:
    """One node's parts. `start`/`stop` run the background services (a worker's whole job);
    `app()` builds the HTTP API, whose lifespan starts and stops them instead."""

    settings: Settings
    db: Database
    registry: EndpointRegistry
    events: JobEvents
    metrics: Metrics | None
    executor: Executor
    pruner: Pruner
    jobs: JobService
    accounts: Authenticator
    cdm: CdmService
    schedules: ScheduleService
    limits: LimitService
    callbacks: CallbackService
    upstreams: Upstreams
    database_clock: DatabaseClock | None = None  # None when a test gave the node its clock
    _started: list[Any] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return self.executor.config.node_id

    @property
    def background(self) -> list[Any]:
        """The services that run beside the API, in start order (the clock first: the others
        read it)."""
        clock = [self.database_clock] if self.database_clock is not None else []
        return [*clock, self.upstreams, self.executor, self.pruner, self.schedules]

    def app(
        self,
        *,
        run_background: bool = True,
        kinetica: KineticaConfig | None = None,
        rest: RestConfig | None = None,
        ui: UiConfig | None = None,
        cdm: CdmConfig | None = None,
    ) -> App:
        """The ASGI app with every facade; its lifespan runs the background services unless
        `run_background` is False (tests that drive the executor themselves)."""
        s = self.settings
        required = self.accounts if s.auth == "required" else None
        return create_app(
            self.jobs,
            background=self.background if run_background else (),
            kinetica=kinetica
            or KineticaConfig(
                max_body_bytes=s.max_body_bytes,
                public_url=s.public_url or None,
                ha_peers=s.ha_peers,
                authenticator=required,
            ),
            cdm=(
                self.cdm,
                cdm or CdmConfig(authenticator=self.accounts, max_body_bytes=s.max_body_bytes),
            ),
            rest=rest or RestConfig(authenticator=required, max_body_bytes=s.max_body_bytes),
            ui=ui or UiConfig(authenticator=required),
            metrics=self.metrics,
            schedules=self.schedules,
            limits=self.limits,
            callbacks=self.callbacks,
        )

    async def prepare(self) -> None:
        """Reach the database, trying again for up to --wait-for-database seconds, then
        migrate it (--migrate), or else check its schema is current. DatabaseUnusable, one
        line, when it cannot be used."""
        await self.db.wait_until_reachable(self.settings.wait_for_database, writable=True)
        if self.settings.migrate:
            await migrate_to_head(self.db)
        else:
            await require_schema(self.db, at_head=True)
        if (warning := await self.db.upkeep_warning()) is not None:
            log.warning("%s", warning)

    async def start(self) -> None:
        for service in self.background:
            await service.start()
            self._started.append(service)

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()

    async def close(self) -> None:
        """Stop what runs and release the database connections."""
        await self.stop()
        await self.db.dispose()


def build_node(
    settings: Settings,
    *,
    command: str = "serve",
    db: Database | None = None,
    registry: EndpointRegistry | None = None,
    clock: Clock | None = None,
    local_clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
) -> Node:
    """Wire a node. Raises ConfigError on bad settings, endpoint modules or an endpoints
    file; connects nothing yet (the first transaction does). `env`: where the endpoints file
    and the Kinetica upstream read secrets (the process environment by default)."""
    env = os.environ if env is None else env
    registry = registry or default_registry(settings.endpoints, entry_points=True)
    db = db or Database(
        settings.database_url, pool_size=settings.pool_size, **settings.database_options()
    )
    # Nodes agree on time by keeping the database's (leases, due jobs); tests may pass a
    # ManualClock instead, or skew the machine's clock under the database's with `local_clock`.
    database_clock = None if clock is not None else DatabaseClock(db, local=local_clock)
    clock = clock or database_clock
    assert clock is not None
    events = JobEvents()
    metrics = Metrics() if settings.metrics else None
    upstreams = Upstreams(metrics=metrics, public_url=settings.public_url or None)
    add_upstream_endpoints(registry, upstreams, settings, env)
    executor = Executor(
        db,
        registry,
        settings.executor_config(command),
        clock=clock,
        metrics=metrics,
        events=events,
    )
    pruner = Pruner(db, settings.pruner_config(), clock=clock)
    jobs = JobService(
        db,
        registry,
        clock=clock,
        default_max_attempts=settings.max_attempts,
        limits=settings.input_limits(),
        events=events,
        metrics=metrics,
        retention=pruner,
    )
    events.on_created(lambda _endpoint, limited: executor.wake(limited))
    events.on_scheduled(executor.scheduler.note)
    events.on_cancel_requested(executor.request_cancel)
    events.on_finished(jobs.wake_waiters)
    events.on_settled(executor.settled)
    schedules = ScheduleService(jobs, clock)
    return Node(
        settings=settings,
        db=db,
        registry=registry,
        events=events,
        metrics=metrics,
        executor=executor,
        pruner=pruner,
        jobs=jobs,
        accounts=Authenticator(db),
        cdm=CdmService(
            jobs, cluster_id=settings.cdm_cluster_id or None, clock=clock, schedules=schedules
        ),
        schedules=schedules,
        limits=LimitService(jobs, clock),
        callbacks=CallbackService(jobs, max_backoff_seconds=settings.max_backoff_seconds),
        upstreams=upstreams,
        database_clock=database_clock,
    )


def add_upstream_endpoints(
    registry: EndpointRegistry, upstreams: Upstreams, settings: Settings, env: Mapping[str, str]
) -> None:
    """The endpoints of --endpoints-file, and --kinetica-upstream for every other name."""
    if settings.endpoints_file:
        for entry in load_endpoints_file(
            settings.endpoints_file, env, reserved=registry.__contains__
        ):
            registry.add(upstreams.http_endpoint(entry))
    if settings.kinetica_upstream:
        upstream = KineticaUpstream.from_settings(settings.kinetica_upstream, env)
        registry.set_fallback(
            lambda name: (
                upstream_endpoint(upstreams, upstream, name) if upstream.accepts(name) else None
            ),
            upstream=upstream.host,
        )


def node_for_tests(
    db: Database,
    *,
    node_id: str = "test",
    registry: EndpointRegistry | None = None,
    clock: Clock | None = None,
    local_clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
    **settings: Any,
) -> Node:
    """A node on an existing (migrated) database, for tests: no entry-point endpoints, no
    metrics unless asked, and any Settings field overridden by keyword; `env` is what an
    endpoints file reads (nothing, by default: not the developer's environment)."""
    base = Settings(database_url=db.url.render_as_string(hide_password=False), node_id=node_id)
    return build_node(
        replace(base, **{"metrics": False, **settings}),
        db=db,
        registry=registry or default_registry(),
        clock=clock,
        local_clock=local_clock,
        env=env or {},
    )
