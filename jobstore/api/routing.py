"""Starlette's router, with the routes of fixed paths found in one dictionary lookup.

Starlette tries the routes in order, a regular expression each. The app has some ninety
(operations, REST, dashboard, CDM, Kinetica), and Kinetica's come last, because they end in a
catch-all: every `/create/job` tried eighty-odd expressions first, about 8% of a busy node's
time. Here a request whose path is exactly a route's fixed path (no `{parameters}`) goes to
that route at once, when the order would have picked it too: when no earlier route's pattern
matches that path. Anything else (a path with parameters, another method, a redirect to add a
slash) takes Starlette's ordered walk, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send


class FixedPathRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(list(routes), **kwargs)
        self.fixed: dict[str, Route] = {}
        for n, route in enumerate(self.routes):
            if not isinstance(route, Route) or route.param_convertors:
                continue
            if route.path not in self.fixed and not _shadowed(route.path, self.routes[:n]):
                self.fixed[route.path] = route

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The route itself checks the match below, so a guess at the path is enough.
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            route = self.fixed.get(path[len(root) :] if root and path.startswith(root) else path)
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)


def _shadowed(path: str, earlier: Sequence[BaseRoute]) -> bool:
    """Whether the ordered walk could stop at an earlier route for `path` (a route without a
    path pattern, such as a Host, counts as one that could)."""
    for route in earlier:
        pattern = getattr(route, "path_regex", None)
        if pattern is None or pattern.match(path):
            return True
    return False
