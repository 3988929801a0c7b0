"""Dashboard routes (placeholder until the dashboard lands)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute

from jobstore.auth import Authenticator
from jobstore.service import JobService


@dataclass(frozen=True)
class UiConfig:
    authenticator: Authenticator | None = None  # None: authentication is off
    refresh_seconds: float = 1.0


def ui_routes(service: JobService, config: UiConfig) -> list[BaseRoute]:
    return []
