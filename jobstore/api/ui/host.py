"""What the dashboard's extra pages (schedules, limits) use of the dashboard that serves them
(routes.Dashboard), as a protocol: the pages need not import the routes module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from jobstore.core.accounts import Principal
from jobstore.core.jobs import JobService

Handler = Callable[[Request, "Principal | None"], Awaitable[Response]]


class Host(Protocol):
    service: JobService

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]: ...

    def render(
        self, template: str, context: dict[str, Any], principal: Principal | None
    ) -> Response: ...

    def error_page(
        self, status: int, title: str, message: str, principal: Principal | None = None
    ) -> Response: ...

    def refuse_cross_site(
        self, request: Request, principal: Principal | None, what: str
    ) -> Response | None: ...
