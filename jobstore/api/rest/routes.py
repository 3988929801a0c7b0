"""REST routes (placeholder until the REST API lands)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute

from jobstore.auth import Authenticator
from jobstore.executor.pruner import Pruner
from jobstore.service import JobService


@dataclass(frozen=True)
class RestConfig:
    authenticator: Authenticator | None = None  # None: authentication is off
    max_body_bytes: int = 64 * 1024 * 1024
    pruner: Pruner | None = None
    max_wait_seconds: float = 60.0


def rest_routes(service: JobService, config: RestConfig) -> list[BaseRoute]:
    return []
