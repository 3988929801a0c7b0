"""Dashboard routes: server-rendered pages (Jinja2) and the fragments their script refreshes.

    GET  /ui                       job list: counts per state, filters, search, newest jobs
    GET  /ui/live                  the list's live part (counts, rows), for the refresh script
    GET  /ui/jobs/{id}             one job: state, progress, timings, run settings, attempts,
                                   status map, payloads
    GET  /ui/jobs/{id}/live        the job page's live part
    POST /ui/jobs/{id}/cancel      cancel, then 303 back to the job page (same-origin only)
    POST /ui/jobs/{id}/retry       run a job that ended error or cancelled again, then 303 back
    POST /ui/bulk/{action}?<filter>  cancel or retry every job the list's filter selects, then
                                   303 back to that list, which says how many (same-origin)
    GET  /ui/schedules             recurring schedules: when each fires, its last job and
                                   that job's state (schedules.py; with a ScheduleService)
    GET  /ui/schedules/live        the schedules page's live part
    POST /ui/schedules/{action}?name=<name>  pause, resume or fire a schedule now, then 303
                                   back to the schedules page (same-origin only)
    GET  /ui/limits[/live]         concurrency keys: running against each key's limit, queued,
                                   and the limit's source; POST /ui/limits/set and /delete
                                   (admins) set or remove a named limit (limits.py)
    GET  /ui/endpoints             this node's endpoints: kind, upstream host, defaults, limits
    GET  /ui/static/{name}         the stylesheet and the script, from the package

With an authenticator every page but the static files needs credentials (401 with a Basic
challenge, so browsers ask); a user who is not an admin sees only the jobs (and schedules)
they created.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from jobstore.api.credentials import NotAuthenticated, authenticate, owner_filter
from jobstore.api.errors import guard
from jobstore.api.ui import views
from jobstore.api.ui.endpoints import EndpointPages
from jobstore.api.ui.limits import LimitPages
from jobstore.api.ui.schedules import SchedulePages
from jobstore.core.accounts import Authenticator, Principal
from jobstore.core.jobs import BULK_MAX_JOBS, COUNT_CAP, JobService
from jobstore.core.limits import LimitService
from jobstore.core.schedules import ScheduleService
from jobstore.domain.errors import (
    BadRequest,
    JobNotFound,
    JobNotRetryable,
    JobRemoved,
    LimitNotFound,
    ScheduleNotFound,
    StoreUnavailable,
)
from jobstore.domain.models import Attempt, Job, JobQuery, JobState, is_valid_tag

log = logging.getLogger(__name__)

MAX_JOB_ID = 2**63 - 1
MAX_QUERY_CHARS = 256
SHOWN_QUERY_CHARS = 60  # of a search term, in a notice
HTML_HEADERS = {
    # Everything comes from this origin; no inline script; nobody may frame the cancel button.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

PageHandler = Callable[[Request, "Principal | None"], Awaitable[Response]]


@dataclass(frozen=True)
class UiConfig:
    authenticator: Authenticator | None = None  # None: authentication is off
    refresh_seconds: float = 1.0  # how often open pages re-read counts, rows and progress
    page_size: int = 50  # jobs per list page
    bulk_limit: int = BULK_MAX_JOBS  # jobs one press of a bulk button acts on, at most


@dataclass(frozen=True)
class _Static:
    body: bytes
    media_type: str
    version: str


@dataclass(frozen=True)
class ListFilter:
    """The list page's query string, checked."""

    status: str = ""
    endpoint: str = ""
    q: str = ""
    before: int | None = None

    @classmethod
    def parse(cls, params: Any) -> ListFilter:
        status = params.get("status", "").strip()
        try:
            views.parse_states(status)
        except ValueError:
            choices = ", ".join([*(s.value for s in JobState), *views.STATE_GROUPS])
            raise BadRequest(f"unknown status {status!r}: use one of {choices}") from None
        endpoint = params.get("endpoint", "").strip()
        q = params.get("q", "").strip()
        if len(endpoint) > MAX_QUERY_CHARS or len(q) > MAX_QUERY_CHARS:
            raise BadRequest(f"endpoint and search take at most {MAX_QUERY_CHARS} characters")
        raw_before = params.get("before", "").strip()
        before = None
        if raw_before:
            before = job_id_in(raw_before)
            if before is None:
                raise BadRequest(f"before must be a job id, got {raw_before!r}")
        return cls(status=status, endpoint=endpoint, q=q, before=before)

    def query_string(self, **changes: Any) -> str:
        values = {**self.__dict__, **changes}
        pairs = {k: v for k, v in values.items() if v not in ("", None)}
        return "?" + urlencode(pairs) if pairs else ""

    @property
    def filtered(self) -> bool:
        return bool(self.status or self.endpoint or self.q or self.before)

    def query(self, owner: str | None) -> JobQuery:
        """The jobs this filter selects (the search term aside): the list shows them, and the
        bulk buttons act on them, so the two cannot disagree."""
        return JobQuery(
            states=views.parse_states(self.status),
            endpoint=self.endpoint or None,
            created_by=owner,
            before_id=self.before,
        )


def job_id_in(text: str) -> int | None:
    """The job id `text` spells (ASCII digits, in range), else None."""
    if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_JOB_ID:
        return int(text)
    return None


def _same_origin(request: Request) -> bool:
    """A browser's own form or fetch, not a cross-site forgery.

    Browsers send Sec-Fetch-Site (which pages cannot forge); older ones send Origin on every
    POST. A request with neither is refused: scripts and tools have the REST API.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


class PageErrors:
    """Failures as the dashboard's error page, with its usual headers (the renderer for guard)."""

    own_errors: tuple[type[Exception], ...] = ()

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def unauthorized(self, request: Request, exc: NotAuthenticated) -> Response:
        return self.dashboard.error_page(
            401,
            "Sign in",
            "The dashboard needs a jobstore user name and password.",
            headers={"WWW-Authenticate": 'Basic realm="jobstore"'},
        )

    def client_error(
        self, request: Request, exc: Exception, principal: Principal | None
    ) -> Response:
        if isinstance(exc, (JobNotFound, ScheduleNotFound, LimitNotFound)):
            return self.dashboard.error_page(404, "Not found", str(exc), principal)
        return self.dashboard.error_page(400, "Bad request", str(exc), principal)

    def unavailable(
        self, request: Request, exc: StoreUnavailable, principal: Principal | None
    ) -> Response:
        return self.dashboard.error_page(503, "Database unavailable", str(exc), principal)

    def internal(self, request: Request, principal: Principal | None) -> Response:
        message = "The dashboard could not show this page; the server's log says why."
        return self.dashboard.error_page(500, "Internal error", message, principal)


class Dashboard:
    def __init__(
        self,
        service: JobService,
        config: UiConfig,
        schedules: ScheduleService | None = None,
        limits: LimitService | None = None,
    ) -> None:
        self.service = service
        self.config = config
        self.schedule_pages = SchedulePages(self, schedules) if schedules is not None else None
        self.limit_pages = LimitPages(self, limits) if limits is not None else None
        self.static = {name: self._load_static(name) for name in ("ui.css", "ui.js")}
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("jobstore.api.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            static_url=self.static_url,
            refresh_seconds=config.refresh_seconds,
            has_schedules=schedules is not None,
            has_limits=limits is not None,
        )
        self.errors = PageErrors(self)

    @staticmethod
    def _load_static(name: str) -> _Static:
        body = resources.files("jobstore.api.ui").joinpath("static", name).read_bytes()
        suffix = name[name.rindex(".") :]
        return _Static(body, STATIC_TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])

    def static_url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.static[name].version}"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ui", self.guarded(self.list_page), methods=["GET"]),
            Route("/ui/live", self.guarded(self.list_live), methods=["GET"]),
            Route("/ui/jobs/{job_id:int}", self.guarded(self.job_page), methods=["GET"]),
            Route("/ui/jobs/{job_id:int}/live", self.guarded(self.job_live), methods=["GET"]),
            Route("/ui/jobs/{job_id:int}/cancel", self.guarded(self.cancel), methods=["POST"]),
            Route("/ui/jobs/{job_id:int}/retry", self.guarded(self.retry), methods=["POST"]),
            Route("/ui/bulk/{action}", self.guarded(self.bulk), methods=["POST"]),
            *(self.schedule_pages.routes() if self.schedule_pages else []),
            *(self.limit_pages.routes() if self.limit_pages else []),
            *EndpointPages(self).routes(),
            Route("/ui/static/{name}", self.static_file, methods=["GET"]),
            Route("/ui/{rest:path}", self.guarded(self.not_found), methods=["GET"]),
        ]

    # -- rendering --------------------------------------------------------------------------

    def render(
        self,
        template: str,
        context: dict[str, Any],
        principal: Principal | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            **context,
            user=principal.user if principal else None,
            is_admin=principal.is_admin if principal else False,
        )
        return HTMLResponse(html, status, headers={**HTML_HEADERS, **(headers or {})})

    def error_page(
        self,
        status: int,
        title: str,
        message: str,
        principal: Principal | None = None,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        context = {"title": title, "message": message, "status": status}
        return self.render("error.html", context, principal, status, headers)

    def guarded(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, then run the page; every failure becomes an error page, never a 500
        from Starlette without this page's headers."""

        async def endpoint(request: Request) -> Response:
            return await guard(request, self.errors, self._principal, handler)

        return endpoint

    async def _principal(self, request: Request) -> Principal | None:
        return await authenticate(self.config.authenticator, request.headers)

    # -- the job list -----------------------------------------------------------------------

    async def _list_context(self, request: Request, principal: Principal | None) -> dict[str, Any]:
        f = ListFilter.parse(request.query_params)
        owner = owner_filter(principal)
        query = f.query(owner)
        notice = None
        older_url = None
        if f.q:
            jobs, notice = await self._search(f.q, query, owner)
        else:
            size = self.config.page_size
            jobs = await self._newest(query, size + 1)
            if len(jobs) > size:
                jobs = jobs[:size]
                older_url = "/ui" + f.query_string(before=jobs[-1].job_id)
        counts = await self.service.status_counts(created_by=owner)
        endpoints = self.service.registry.names()
        if f.endpoint and f.endpoint not in endpoints:
            endpoints = [*endpoints, f.endpoint]  # served by another node's endpoints
        return {
            "f": f,
            "rows": [views.row_view(job) for job in jobs],
            "counts": views.count_views(counts, COUNT_CAP, f.status or None),
            "states": [s.value for s in JobState],
            "groups": list(views.STATE_GROUPS),
            "endpoints": endpoints,
            "notice": notice,
            "older_url": older_url,
            "newest_url": "/ui" + f.query_string(before=None) if f.before else None,
            "live_url": "/ui/live" + f.query_string(),
            "scope": "All jobs" if owner is None else "Your jobs",
            "bulk": self._bulk_buttons(f),
            "bulk_words": views.filter_words(f.status, f.endpoint),
            "bulk_limit": self.config.bulk_limit,
            "bulk_notice": views.bulk_notice(request.query_params),
        }

    def _bulk_buttons(self, f: ListFilter) -> list[dict[str, str]]:
        """The bulk buttons the list's filter allows: none without a status or endpoint (or
        with a search), and only those whose action can touch the states it shows."""
        if f.q or not (f.status or f.endpoint):
            return []
        states = views.parse_states(f.status)
        words = views.filter_words(f.status, f.endpoint)
        target = f.query_string(before=None)
        buttons = []
        if views.bulk_applies("cancel", states):
            buttons.append(
                {
                    "action": "cancel",
                    "url": "/ui/bulk/cancel" + target,
                    "label": "Cancel matching jobs",
                    "confirm": f"Cancel every scheduled, queued or running job with {words}?",
                }
            )
        if views.bulk_applies("retry", states):
            buttons.append(
                {
                    "action": "retry",
                    "url": "/ui/bulk/retry" + target,
                    "label": "Retry matching jobs",
                    "confirm": f"Retry every error or cancelled job with {words}?",
                }
            )
        return buttons

    async def _newest(self, query: JobQuery, limit: int) -> list[Job]:
        """The newest `limit` jobs matching `query`.

        Several states are read one at a time and merged: each read is a short walk of
        (status, job_id), where `status IN (...)` would make SQLite scan the whole table. One
        user's jobs are read state by state too, along (created_by, status, job_id).
        """
        states = query.states
        if states is None and query.created_by is not None:
            states = tuple(JobState)
        if states is None or len(states) < 2:
            return await self.service.search_jobs(query, limit=limit)
        found: list[Job] = []
        for state in states:
            found += await self.service.search_jobs(replace(query, states=(state,)), limit=limit)
        found.sort(key=lambda job: job.job_id, reverse=True)
        return found[:limit]

    async def _search(
        self, q: str, query: JobQuery, owner: str | None
    ) -> tuple[list[Job], str | None]:
        """Jobs whose tag is exactly `q`, or whose id is `q`, within the other filters.

        With no row to show, the notice says why: the job was removed, the filters hide it,
        or no job has that tag or id.
        """
        found: list[Job] = []
        notice = None
        hidden = False  # a job has this tag or id, but the status or endpoint filter hides it
        if is_valid_tag(q):
            found = await self.service.search_jobs(replace(query, tag=q, before_id=None), limit=1)
        job_id = job_id_in(q)
        if job_id is not None:
            try:
                job = await self.service.get_job(job_id=job_id, visible_to=owner)
            except JobRemoved as exc:
                notice = str(exc)
            except JobNotFound:
                pass
            else:
                wanted = query.states is None or job.status in query.states
                if wanted and query.endpoint in (None, job.endpoint):
                    found = [job, *(j for j in found if j.job_id != job.job_id)]
                else:
                    hidden = True
        if not found and notice is None and is_valid_tag(q):
            try:
                await self.service.get_job(tag=q, visible_to=owner)
            except JobRemoved as exc:
                notice = str(exc)
            except JobNotFound:
                pass
            else:
                hidden = True
        if not found and notice is None:
            shown = q if len(q) <= SHOWN_QUERY_CHARS else q[:SHOWN_QUERY_CHARS] + "..."
            if hidden:
                notice = (
                    f"A job has the tag or id '{shown}', but the status or endpoint chosen "
                    "above hides it."
                )
            else:
                notice = (
                    f"No job has the tag or id '{shown}'; search takes an exact job tag "
                    "(letters, digits, '_' and '-') or a job id."
                )
        return found, notice

    async def list_page(self, request: Request, principal: Principal | None) -> Response:
        return self.render("list.html", await self._list_context(request, principal), principal)

    async def list_live(self, request: Request, principal: Principal | None) -> Response:
        context = await self._list_context(request, principal)
        return self.render("_list_live.html", context, principal)

    # -- one job ----------------------------------------------------------------------------

    async def _job(self, request: Request, principal: Principal | None) -> Job:
        job_id = int(request.path_params["job_id"])
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id=job_id)
        return await self.service.get_job(job_id=job_id, visible_to=owner_filter(principal))

    async def _job_and_attempts(
        self, request: Request, principal: Principal | None
    ) -> tuple[Job, list[Attempt]]:
        job = await self._job(request, principal)
        attempts = await self.service.attempts(job.job_id, visible_to=owner_filter(principal))
        return job, attempts

    def _removed(self, exc: JobRemoved, principal: Principal | None) -> Response:
        return self.error_page(410, f"Job {exc.job_id} was removed", str(exc), principal)

    async def job_page(self, request: Request, principal: Principal | None) -> Response:
        try:
            job, attempts = await self._job_and_attempts(request, principal)
        except JobRemoved as exc:
            return self._removed(exc, principal)
        now = self.service.clock.now()
        params = request.query_params
        context = {
            "j": views.detail_view(job, self.service.registry, now),
            "attempts": views.attempt_views(attempts, now),
            "flash": views.CANCEL_OUTCOMES.get(params.get("cancel", ""))
            or views.RETRY_OUTCOMES.get(params.get("retry", "")),
        }
        return self.render("job.html", context, principal)

    async def job_live(self, request: Request, principal: Principal | None) -> Response:
        try:
            job, attempts = await self._job_and_attempts(request, principal)
        except JobRemoved as exc:
            return self._removed(exc, principal)
        now = self.service.clock.now()
        context = {"j": views.status_view(job, now), "attempts": views.attempt_views(attempts, now)}
        return self.render("_job_live.html", context, principal)

    def _cross_site(self, principal: Principal | None, what: str) -> Response:
        return self.error_page(
            403,
            "Refused",
            f"{what} only from the dashboard's own page (this request came from another "
            "site, or without Origin and Sec-Fetch-Site headers). Scripts: use the API.",
            principal,
        )

    def refuse_cross_site(
        self, request: Request, principal: Principal | None, what: str
    ) -> Response | None:
        """The refusal of a POST that did not come from the dashboard's own page, else None."""
        return None if _same_origin(request) else self._cross_site(principal, what)

    def _posted_job_id(self, request: Request) -> int:
        job_id = int(request.path_params["job_id"])
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id=job_id)
        return job_id

    async def cancel(self, request: Request, principal: Principal | None) -> Response:
        if not _same_origin(request):
            return self._cross_site(principal, "Cancel")
        job_id = self._posted_job_id(request)
        outcomes = await self.service.cancel_jobs([job_id], created_by=owner_filter(principal))
        outcome = outcomes.get(job_id, "not_found")
        if outcome == "not_found":
            raise JobNotFound(job_id=job_id)
        log.info("job %d: cancel from the dashboard: %s", job_id, outcome)
        return RedirectResponse(f"/ui/jobs/{job_id}?cancel={outcome}", status_code=303)

    async def retry(self, request: Request, principal: Principal | None) -> Response:
        if not _same_origin(request):
            return self._cross_site(principal, "Retry")
        job_id = self._posted_job_id(request)
        try:
            await self.service.retry_job(job_id, visible_to=owner_filter(principal))
        except JobRemoved as exc:
            return self._removed(exc, principal)
        except JobNotRetryable as exc:
            outcome = "not_retryable"
            log.info("job %d: retry from the dashboard refused: %s", job_id, exc)
        else:
            outcome = "retried"
            log.info("job %d: retried from the dashboard", job_id)
        return RedirectResponse(f"/ui/jobs/{job_id}?retry={outcome}", status_code=303)

    async def bulk(self, request: Request, principal: Principal | None) -> Response:
        """Cancel or retry every job the list's filter selects, on all its pages (`before`
        is a page of the list, not a filter: it is dropped)."""
        action = request.path_params["action"]
        if action not in views.BULK_STATES:
            return self.error_page(404, "Not found", "The dashboard has no such page.", principal)
        if not _same_origin(request):
            return self._cross_site(principal, "Bulk actions")
        f = replace(ListFilter.parse(request.query_params), before=None)
        if f.q:
            message = (
                "Bulk actions take a status or endpoint filter, not a search: "
                "open the job and use its own button."
            )
            return self.error_page(400, "Choose a filter first", message, principal)
        if not (f.status or f.endpoint):
            message = (
                f"A bulk {action} needs a filter: choose a status or an endpoint first, so "
                f"that one click cannot {action} every job."
            )
            return self.error_page(400, "Choose a filter first", message, principal)
        result = await self.service.bulk_action(
            action, f.query(owner_filter(principal)), max_jobs=self.config.bulk_limit
        )
        log.info(
            "bulk %s from the dashboard (%r): %d matched, %s%s",
            action,
            views.filter_words(f.status, f.endpoint),
            result.matched,
            result.outcomes,
            ", more match" if result.more else "",
        )
        params = views.bulk_params(action, result.outcomes, result.matched, result.more)
        return RedirectResponse("/ui" + f.query_string(**params), status_code=303)

    # -- the rest ---------------------------------------------------------------------------

    async def static_file(self, request: Request) -> Response:
        static = self.static.get(request.path_params["name"])
        if static is None:
            return self.error_page(404, "Not found", "No such file.")
        return Response(
            static.body,
            media_type=static.media_type,
            headers={
                "Cache-Control": "public, max-age=86400",
                "ETag": f'"{static.version}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def not_found(self, request: Request, principal: Principal | None) -> Response:
        if request.path_params["rest"] == "":
            return RedirectResponse("/ui", status_code=308)
        return self.error_page(404, "Not found", "The dashboard has no such page.", principal)
