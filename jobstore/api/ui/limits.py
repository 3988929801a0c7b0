"""The dashboard's limits page: every concurrency key, its running jobs against its limit,
its queued jobs and where the limit comes from; a form to set a named limit, and a button to
remove one.

    GET  /ui/limits                   the page
    GET  /ui/limits/live              its live part (the table), for the refresh script
    POST /ui/limits/set               form fields key and max_running; then 303 back
    POST /ui/limits/delete?key=<key>  remove the key's named limit; then 303 back

A key is not anyone's: its limit holds for every user's jobs, and its counts are everyone's.
So every signed-in user sees every key (read-only), and only an admin (anyone, when
authentication is off) sets or removes a limit. The key travels in the query, not the path:
a key may be any printable text, "/", "." and ".." included.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from jobstore.api.body import read_body
from jobstore.api.ui import views
from jobstore.api.ui.host import Host
from jobstore.core.accounts import Principal
from jobstore.core.limits import MAX_LIMIT, LimitService
from jobstore.domain.errors import BadOption, BadRequest
from jobstore.domain.inputs import check_text

log = logging.getLogger(__name__)

# The set form's body: a key of 128 characters, percent-encoded, fits many times over.
MAX_FORM_BYTES = 8 * 1024
# At most this many keys are shown (in key order); a note says how many more there are.
MAX_ROWS = 1000


def may_change(principal: Principal | None) -> bool:
    """Whether the caller may set and remove limits: an admin, or anyone without auth."""
    return principal is None or principal.is_admin


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a form POST (application/x-www-form-urlencoded), read with a cap."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form's fields could not be read") from None
    for name, value in pairs:  # a body, so the boundary has not seen it
        check_text(name, what="a form field's name")
        check_text(value, what=f"the form's field {name!r}")
    return dict(pairs)


class LimitPages:
    def __init__(self, dashboard: Host, limits: LimitService) -> None:
        self.ui = dashboard
        self.limits = limits

    def routes(self) -> list[BaseRoute]:
        page = self.ui.guarded
        return [
            Route("/ui/limits", page(self.page), methods=["GET"]),
            Route("/ui/limits/live", page(self.live), methods=["GET"]),
            Route("/ui/limits/set", page(self.set_limit), methods=["POST"]),
            Route("/ui/limits/delete", page(self.delete_limit), methods=["POST"]),
        ]

    async def _context(self, principal: Principal | None) -> dict[str, Any]:
        states = await self.limits.keys()
        by = {named.key: named.updated_by for named in await self.limits.list()}
        rows = [views.key_view(state, by.get(state.key)) for state in states[:MAX_ROWS]]
        return {
            "rows": rows,
            "more": max(0, len(states) - MAX_ROWS),
            "can_change": may_change(principal),
        }

    async def page(self, request: Request, principal: Principal | None) -> Response:
        context = {
            **await self._context(principal),
            "notice": views.limit_notice(request.query_params),
        }
        return self.ui.render("limits.html", context, principal)

    async def live(self, request: Request, principal: Principal | None) -> Response:
        return self.ui.render("_limits_live.html", await self._context(principal), principal)

    def _refused(self, request: Request, principal: Principal | None, what: str) -> Response | None:
        refused = self.ui.refuse_cross_site(request, principal, what)
        if refused is not None or may_change(principal):
            return refused
        message = (
            "Only an admin sets or removes concurrency limits: a key's limit holds for every "
            "user's jobs."
        )
        return self.ui.error_page(403, "Refused", message, principal)

    async def set_limit(self, request: Request, principal: Principal | None) -> Response:
        refused = self._refused(request, principal, "Setting a limit")
        if refused is not None:
            return refused
        fields = await form_fields(request)
        key = fields.get("key", "")
        raw = fields.get("max_running", "").strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_LIMIT)):
            rule = f"must be a whole number from 0 to {MAX_LIMIT}"
            raise BadOption("max_running", f"{rule}, got {raw[:20]!r}")
        limit = await self.limits.set(key, int(raw), by=principal.user if principal else None)
        log.info("concurrency key %r: limit set to %d from the dashboard", key, limit.max_running)
        done = {"done": "set", "key": limit.key, "n": limit.max_running}
        return RedirectResponse("/ui/limits?" + urlencode(done), status_code=303)

    async def delete_limit(self, request: Request, principal: Principal | None) -> Response:
        refused = self._refused(request, principal, "Removing a limit")
        if refused is not None:
            return refused
        key = request.query_params.get("key", "")
        await self.limits.delete(key)
        log.info("concurrency key %r: named limit removed from the dashboard", key)
        return RedirectResponse("/ui/limits?" + urlencode({"done": "delete", "key": key}), 303)
