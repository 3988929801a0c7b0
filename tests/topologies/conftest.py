"""Fixtures for the topology tests: throwaway clusters, a synchronous standby pair, PgBouncer.

Each fixture checks its tools first (skip locally, fail under CI) and removes everything it
started, even when the test fails; the session ends by reaping anything left over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.topologies import PgBouncer, PgCluster, cleanup_all, require_topology_tools


@pytest.fixture(scope="session", autouse=True)
def _reap_topologies() -> Iterator[None]:
    """Last resort: nothing a topology test started outlives the session."""
    try:
        yield
    finally:
        cleanup_all()


@pytest.fixture
def pg_cluster_factory() -> Iterator[Callable[..., PgCluster]]:
    """`make(port=None, *, name="primary", start=True)` -> a new PgCluster, removed afterwards."""
    require_topology_tools("postgres")
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> PgCluster:
            cluster = PgCluster.create(**kwargs)
            stack.callback(cluster.cleanup)
            return cluster

        yield make


@pytest.fixture
def pg_primary(pg_cluster_factory: Callable[..., PgCluster]) -> PgCluster:
    """A started cluster, removed after the test."""
    return pg_cluster_factory(name="primary")


@pytest.fixture
def pg_standby_pair(pg_primary: PgCluster) -> Iterator[tuple[PgCluster, PgCluster]]:
    """(primary, standby): the standby streams synchronously (application_name "standby")."""
    standby = PgCluster.standby_of(pg_primary, name="standby", synchronous=True)
    try:
        yield pg_primary, standby
    finally:
        standby.cleanup()


@pytest.fixture
def pgbouncer_factory() -> Iterator[Callable[..., PgBouncer]]:
    """`make(target, **PgBouncer.start keywords)` -> a started PgBouncer, stopped afterwards."""
    require_topology_tools("pgbouncer")
    with contextlib.ExitStack() as stack:

        def make(target: PgCluster | tuple[str, int], **kwargs: Any) -> PgBouncer:
            bouncer = PgBouncer.start(target, **kwargs)
            stack.callback(bouncer.cleanup)
            return bouncer

        yield make


@pytest.fixture
def faketime_available() -> None:
    """Skips (fails under CI) without libfaketime."""
    require_topology_tools("faketime")
