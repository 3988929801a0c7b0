"""Concurrency limits in the REST API, under /api/v1/limits: every concurrency key's running
and queued jobs against its limit, and the named limits (set, change, remove).

    GET    /api/v1/limits         every key with a named limit or with queued or running jobs
    GET    /api/v1/limits/{key}   one key
    PUT    /api/v1/limits/{key}   {"max_running": N}: set its named limit (0 holds its jobs)
    DELETE /api/v1/limits/{key}   remove its named limit (it falls back to its endpoints')

A key may be any printable text, '/' included: the route takes the rest of the path, sent
raw or percent-encoded (a link encodes it). Only "." and ".." cannot travel as a path
segment (clients and proxies resolve them away), so PUT refuses them; the dashboard's form,
which takes the key in a field, can set them, and a link spells them %2E.

A key is not anyone's: its limit holds for every user's jobs, and its counts are everyone's.
So, as on the dashboard's limits page, every signed-in user reads every key, and only an admin
(anyone, when authentication is off) sets or removes a limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobstore.api.documents import iso
from jobstore.api.rest.problems import FieldError, JsonResponse, Problem, invalid
from jobstore.core.accounts import Principal
from jobstore.core.limits import MAX_LIMIT, KeyState, LimitService
from jobstore.domain.errors import BadOption, LimitNotFound
from jobstore.domain.options import concurrency_key

log = logging.getLogger(__name__)

Handler = Callable[[Request, Principal | None], Awaitable[Response]]
Guard = Callable[[Handler], Callable[[Request], Awaitable[Response]]]

LIMITS_PATH = "/api/v1/limits"
DOT_SEGMENTS = (".", "..")
DOT_KEY_RULE = (
    "'.' and '..' cannot be a key in a path (clients resolve them away); set it on the "
    "dashboard's limits page"
)
LIMIT_RULE = f"required: a whole number from 0 to {MAX_LIMIT} (0 holds the key's jobs)"


def any_text(route: Route) -> Route:
    """`route` with its path parameters matching any text: Starlette's `path` convertor is
    `.*`, which stops at a newline, and a path with one would get Starlette's plain-text 404
    instead of a problem."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def limit_location(key: str) -> str:
    """The URL of a key: one path segment, every reserved character percent-encoded."""
    segment = key.replace(".", "%2E") if key in DOT_SEGMENTS else quote(key, safe="")
    return f"{LIMITS_PATH}/{segment}"


def limit_document(state: KeyState, updated_by: str | None = None) -> dict[str, Any]:
    """One key: the limit in force (null: none) and where it comes from, its jobs now."""
    source = "named" if state.named else ("endpoint" if state.limit is not None else None)
    return {
        "key": state.key,
        "max_running": state.limit,
        "source": source,
        "running": state.running,
        "queued": state.queued,
        "updated_at": iso(state.updated_at),
        "updated_by": updated_by if state.named else None,
        "links": {"self": limit_location(state.key)},
    }


def parse_limit(body: Any, errors: list[FieldError]) -> Any:
    """The max_running of a PUT body, as given (the core checks its type and range); raises
    one problem naming every bad field, `errors` (the path's) first."""
    if not isinstance(body, dict):
        rule = "required" if body is None else "must be a JSON object"
        raise invalid([*errors, FieldError("body", "body", f'{rule}: {{"max_running": N}}')])
    errors += [
        FieldError("body", name, "unknown field; the only field is max_running")
        for name in body
        if name != "max_running"
    ]
    if body.get("max_running") is None:
        errors.append(FieldError("body", "max_running", LIMIT_RULE))
    if errors:
        raise invalid(errors)
    return body["max_running"]


def _may_change(principal: Principal | None) -> None:
    """Only an admin (anyone, without authentication) sets or removes a limit."""
    if principal is not None and not principal.is_admin:
        raise Problem(
            "forbidden",
            "only administrators set or remove concurrency limits: a key's limit holds for "
            "every user's jobs",
        )


def _key(request: Request) -> str:
    """The key from the path; one no job or limit can have is not found (without asking the
    database, which may refuse what it holds, like a NUL)."""
    key: str = request.path_params["key"]
    try:
        valid = concurrency_key(key, "key")
    except BadOption:
        valid = None
    if valid is None:
        raise LimitNotFound(key)
    return key


def _no_key(key: str) -> Problem:
    return Problem(
        "limit-not-found",
        f"no concurrency key {key!r}: it has no named limit and no queued or running jobs",
        {"key": key},
    )


class LimitApi:
    """The routes of /api/v1/limits over the core's LimitService."""

    def __init__(
        self, limits: LimitService, read_json: Callable[[Request], Awaitable[Any]]
    ) -> None:
        self.limits = limits
        self.read_json = read_json

    def routes(self, guard: Guard) -> list[Route]:
        one = f"{LIMITS_PATH}/{{key:path}}"
        return [
            Route(LIMITS_PATH, guard(self.list_limits), methods=["GET"]),
            any_text(Route(one, guard(self.get_limit), methods=["GET"])),
            any_text(Route(one, guard(self.set_limit), methods=["PUT"])),
            any_text(Route(one, guard(self.delete_limit), methods=["DELETE"])),
        ]

    async def _documents(self, only: str | None = None) -> list[dict[str, Any]]:
        """The documents of every key (of `only`, when given), by key."""
        states = [s for s in await self.limits.keys() if only is None or s.key == only]
        if not states:
            return []
        by = {named.key: named.updated_by for named in await self.limits.list()}
        return [limit_document(state, by.get(state.key)) for state in states]

    # -- routes -----------------------------------------------------------------------------

    async def list_limits(self, request: Request, principal: Principal | None) -> Response:
        """GET /limits: every key with a named limit or with queued or running jobs."""
        return JsonResponse({"limits": await self._documents()})

    async def get_limit(self, request: Request, principal: Principal | None) -> Response:
        """GET /limits/{key}: 404 when the key has no named limit and no jobs queued or
        running."""
        try:
            key = _key(request)
        except LimitNotFound as exc:
            raise _no_key(exc.key) from None
        found = await self._documents(key)
        if not found:
            raise _no_key(key)
        return JsonResponse(found[0])

    async def set_limit(self, request: Request, principal: Principal | None) -> Response:
        """PUT /limits/{key}: set (or change) the key's named limit; 200 with the key."""
        _may_change(principal)
        key: str = request.path_params["key"]
        dots = [FieldError("path", "key", DOT_KEY_RULE)] if key in DOT_SEGMENTS else []
        max_running = parse_limit(await self.read_json(request), dots)
        try:
            named = await self.limits.set(
                key, max_running, by=principal.user if principal else None
            )
        except BadOption as exc:  # the core names the field: key (the path's) or max_running
            where = "path" if exc.option == "key" else "body"
            raise invalid([FieldError(where, exc.option, exc.reason)]) from None
        log.info("concurrency key %r: limit set to %d over REST", key, named.max_running)
        found = await self._documents(key)
        if found:
            return JsonResponse(found[0])
        # Removed by someone else since: say what this request set.
        state = KeyState(key, named.max_running, True, 0, 0, named.updated_at)
        return JsonResponse(limit_document(state, named.updated_by))

    async def delete_limit(self, request: Request, principal: Principal | None) -> Response:
        """DELETE /limits/{key}: 204; 404 when the key has no named limit."""
        _may_change(principal)
        key = _key(request)
        await self.limits.delete(key)
        log.info("concurrency key %r: named limit removed over REST", key)
        return Response(status_code=204)
