"""The dashboard's schedules page: every recurring schedule, when it fires, its last job and
that job's state, with pause, resume and fire-now buttons.

    GET  /ui/schedules                      the page
    GET  /ui/schedules/live                 its live part (the table), for the refresh script
    POST /ui/schedules/{action}?name=<name>  pause, resume or fire, then 303 back to the page

The name travels in the query, not the path: a schedule may be named "." or "..", which a
browser would fold out of a path. A user who is not an admin sees and acts on only the
schedules they created (whose jobs are theirs too); another's is "not found", as a job is.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from jobstore.api.credentials import owner_filter
from jobstore.api.ui import views
from jobstore.api.ui.host import Host
from jobstore.core.accounts import Principal
from jobstore.core.schedules import ScheduleService
from jobstore.domain.errors import JobNotFound, JobRemoved, ScheduleNotFound
from jobstore.domain.schedules import Schedule

log = logging.getLogger(__name__)

ACTIONS = ("pause", "resume", "fire")


class SchedulePages:
    def __init__(self, dashboard: Host, schedules: ScheduleService) -> None:
        self.ui = dashboard
        self.schedules = schedules
        self.jobs = dashboard.service

    def routes(self) -> list[BaseRoute]:
        page = self.ui.guarded
        return [
            Route("/ui/schedules", page(self.page), methods=["GET"]),
            Route("/ui/schedules/live", page(self.live), methods=["GET"]),
            Route("/ui/schedules/{action}", page(self.act), methods=["POST"]),
        ]

    async def _visible(self, principal: Principal | None) -> list[Schedule]:
        owner = owner_filter(principal)
        found = await self.schedules.list()
        return [s for s in found if owner is None or s.created_by == owner]

    async def _last_job(self, job_id: int | None, owner: str | None) -> views.LastJob | None:
        """The last job's state, read now. One read per schedule: fine for a page of them."""
        if job_id is None:
            return None
        try:
            job = await self.jobs.get_job(job_id=job_id, visible_to=owner)
        except JobRemoved as exc:
            return views.LastJob(job_id, exc.status, removed=True)
        except JobNotFound:
            return views.LastJob(job_id, None)
        return views.LastJob(job_id, job.status.value)

    async def _context(self, principal: Principal | None) -> dict[str, Any]:
        owner = owner_filter(principal)
        now = self.jobs.clock.now()
        served = set(self.jobs.registry.names())
        rows = [
            views.schedule_view(
                s, await self._last_job(s.last_job_id, owner), now, s.endpoint in served
            )
            for s in await self._visible(principal)
        ]
        return {"rows": rows, "scope": "All schedules" if owner is None else "Your schedules"}

    async def page(self, request: Request, principal: Principal | None) -> Response:
        context = {
            **await self._context(principal),
            "notice": views.schedule_notice(request.query_params),
        }
        return self.ui.render("schedules.html", context, principal)

    async def live(self, request: Request, principal: Principal | None) -> Response:
        return self.ui.render("_schedules_live.html", await self._context(principal), principal)

    async def act(self, request: Request, principal: Principal | None) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return self.ui.error_page(
                404, "Not found", "The dashboard has no such page.", principal
            )
        refused = self.ui.refuse_cross_site(request, principal, action.capitalize())
        if refused is not None:
            return refused
        name = request.query_params.get("name", "")
        schedule = await self.schedules.get(name)
        owner = owner_filter(principal)
        if owner is not None and schedule.created_by != owner:
            raise ScheduleNotFound(name)
        done: dict[str, Any] = {"done": action, "name": name}
        if action == "fire":
            done["job"] = await self.schedules.fire_now(name)
            log.info("schedule %s: fired from the dashboard: job %d", name, done["job"])
        else:
            await self.schedules.set_enabled(name, action == "resume")
            log.info("schedule %s: %sd from the dashboard", name, action)
        return RedirectResponse("/ui/schedules?" + urlencode(done), status_code=303)
