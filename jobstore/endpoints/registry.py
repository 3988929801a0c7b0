"""The endpoint registry: the named handlers this node knows, and how modules add theirs.

Users write endpoints as plain functions in a module of their own and mark them with
`@jobstore.endpoint(...)`; `jobstore serve --endpoints pkg.module` loads every marked function.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from jobstore.domain.errors import ConfigError, UnknownEndpoint
from jobstore.domain.limits import EndpointLimits
from jobstore.endpoints import builtins
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, Endpoint, endpoint

__all__ = ["Endpoint", "EndpointRegistry", "JobContext", "endpoint"]


# Builds the endpoint for a name nobody declared, or None when the name cannot be one.
Fallback = Callable[[str], Endpoint | None]


class EndpointRegistry:
    """The endpoints of a node, by name. A `fallback` (a Kinetica upstream) runs any name
    nobody declared; those endpoints have no limits and are built each time they are asked
    for (cheap; a cache would grow with every name clients make up)."""

    def __init__(self, endpoints: Iterable[Endpoint] = ()) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._fallback: Fallback | None = None
        self.fallback_upstream: str | None = None  # the host the fallback calls, for listings
        for ep in endpoints:
            self.add(ep)

    def set_fallback(self, fallback: Fallback | None, *, upstream: str | None = None) -> None:
        self._fallback = fallback
        self.fallback_upstream = upstream if fallback is not None else None

    @property
    def runs_any_name(self) -> bool:
        """Whether jobs of names nobody declared run here (through the fallback)."""
        return self._fallback is not None

    def add(self, ep: Endpoint) -> None:
        if not ep.name.startswith("/") or len(ep.name) > 256:
            raise ConfigError(f"endpoint name {ep.name!r} must start with '/' (max 256 chars)")
        if ep.name in self._endpoints:
            raise ConfigError(f"endpoint {ep.name!r} is registered twice")
        if ep.max_attempts is not None and ep.max_attempts < 1:
            raise ConfigError(f"endpoint {ep.name!r}: max_attempts must be at least 1")
        self._endpoints[ep.name] = ep

    def add_module(self, module: ModuleType) -> int:
        """Register every function of `module` marked with @endpoint; returns how many."""
        found = [getattr(obj, MARK) for obj in vars(module).values() if hasattr(obj, MARK)]
        for ep in found:
            self.add(ep)
        return len(found)

    def load(self, module_name: str) -> int:
        """Register the endpoints of a module. The working directory is importable, as in
        `python -m` and uvicorn, so `--endpoints mypkg.jobs` finds ./mypkg/jobs.py."""
        here = os.getcwd()
        if here not in sys.path:
            sys.path.append(here)  # last: it must not shadow installed packages
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(f"cannot import endpoint module {module_name!r}: {exc}") from exc
        count = self.add_module(module)
        if count == 0:
            raise ConfigError(f"endpoint module {module_name!r} defines no @endpoint functions")
        return count

    def get(self, name: str) -> Endpoint:
        found = self._endpoints.get(name)
        if found is None and self._fallback is not None:
            found = self._fallback(name)
        if found is None:
            raise UnknownEndpoint(name, self.names())
        return found

    def __contains__(self, name: object) -> bool:
        """Whether `name` was declared (the fallback's names are not)."""
        return name in self._endpoints

    def has_global_limit(self, name: str) -> bool:
        """Whether the endpoint `name` caps all its running jobs (its jobs wait for the
        limited claim, store/limits.py); False for an endpoint this node does not know."""
        found = self._endpoints.get(name)
        return found is not None and found.limits.global_limit is not None

    def limits(self) -> dict[str, EndpointLimits]:
        """Every endpoint's declared limits, by name."""
        return {name: ep.limits for name, ep in self._endpoints.items()}

    def names(self) -> list[str]:
        """The declared endpoints' names."""
        return sorted(self._endpoints)

    def __iter__(self) -> Any:
        return iter(self._endpoints.values())


ENTRY_POINT_GROUP = "jobstore.endpoints"


def default_registry(
    modules: Iterable[str] = (), *, entry_points: bool = False
) -> EndpointRegistry:
    """The built-in endpoints, those of installed packages that declare an entry point in the
    group "jobstore.endpoints" (when `entry_points` is set), and those of the named modules."""
    registry = EndpointRegistry()
    registry.add_module(builtins)
    names = list(modules)
    if entry_points:
        names += [ep.module for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for name in dict.fromkeys(names):
        registry.load(name)
    return registry
