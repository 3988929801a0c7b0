"""The dashboard's endpoints page: what this node runs, by name, and how.

    GET  /ui/endpoints   the page

Each declared endpoint shows its kind (`python` in this process, `http` calling an upstream
service from the endpoints file, `kinetica-upstream`), the upstream's host, its description,
whether it is retryable, its jobs' defaults (max attempts, timeout, retries) and its limits;
its name links to the job list filtered by it. When a Kinetica upstream runs every name
nobody declared, a note says so, with the upstream's host.

Only hosts are shown of an upstream: never a URL's path or query, a header, a token or a
password (the endpoints file may read secrets from the environment). The page is the node's
configuration, not anyone's jobs: every signed-in user sees all of it, read-only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jobstore.api.ui import views
from jobstore.api.ui.host import Host
from jobstore.core.accounts import Principal
from jobstore.endpoints.definition import Endpoint

KINDS = {
    "python": "runs in this node's process",
    "http": "calls an upstream HTTP service (the endpoints file)",
    "kinetica-upstream": "runs on the upstream Kinetica",
}


def list_url(name: str) -> str:
    """The job list filtered by the endpoint `name`."""
    return "/ui?" + urlencode({"endpoint": name})


def _retries(ep: Endpoint) -> str | None:
    """What a failed attempt does by default, when it runs again."""
    if not (ep.retryable and ep.defaults.retry_errors):
        return None
    backoff = views.seconds_setting(ep.defaults.backoff_seconds)
    return f"retries errors{f' (backoff {backoff})' if backoff else ''}"


def _limits(ep: Endpoint) -> list[str]:
    found = []
    if ep.limits.concurrency_limit is not None:
        found.append(f"{ep.limits.concurrency_limit:,} per concurrency key")
    if ep.limits.global_limit is not None:
        found.append(f"{ep.limits.global_limit:,} in all")
    return found


def endpoint_view(ep: Endpoint, default_max_attempts: int) -> dict[str, Any]:
    """One row of the table. `upstream` is a host (and port) only, as the endpoint keeps it."""
    return {
        "name": ep.name,
        "url": list_url(ep.name),
        "kind": ep.kind,
        "kind_title": KINDS.get(ep.kind, ep.kind),
        "upstream": ep.upstream,
        "description": ep.description,
        "retryable": ep.retryable,
        "retries": _retries(ep),
        # A job of an endpoint that is not retryable never runs a second attempt by itself.
        "max_attempts": f"{ep.max_attempts or default_max_attempts:,}" if ep.retryable else "1",
        "max_attempts_default": ep.retryable and ep.max_attempts is None,
        "timeout": views.seconds_setting(ep.defaults.timeout_seconds),
        "priority": ep.defaults.priority,
        "limits": _limits(ep),
    }


class EndpointPages:
    def __init__(self, dashboard: Host) -> None:
        self.ui = dashboard
        self.jobs = dashboard.service

    def routes(self) -> list[BaseRoute]:
        return [Route("/ui/endpoints", self.ui.guarded(self.page), methods=["GET"])]

    def context(self) -> dict[str, Any]:
        registry = self.jobs.registry
        declared = sorted(registry, key=lambda ep: ep.name)
        default = self.jobs.default_max_attempts
        return {
            "rows": [endpoint_view(ep, default) for ep in declared],
            "fallback": registry.fallback_upstream if registry.runs_any_name else None,
            "runs_any_name": registry.runs_any_name,
        }

    async def page(self, request: Request, principal: Principal | None) -> Response:
        return self.ui.render("endpoints.html", self.context(), principal)
