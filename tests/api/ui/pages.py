"""The dashboard in-process, for its tests: the real app over a real database, and readers
for the data attributes its pages carry (data-job-id, data-status, data-count, data-attempt),
so tests do not depend on the layout."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx

from jobstore.api.ui import UiConfig
from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.core.limits import LimitService
from jobstore.core.schedules import ScheduleService
from jobstore.domain.clock import Clock
from jobstore.domain.errors import JobRemoved
from jobstore.domain.models import Encoding, Job, JobState, Payload
from jobstore.endpoints.registry import EndpointRegistry
from jobstore.store import Database

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@dataclass
class Env:
    client: httpx.AsyncClient
    service: JobService
    schedules: ScheduleService
    limits: LimitService

    async def create(
        self,
        endpoint: str,
        request: Any,
        *,
        tag: str | None = None,
        user: str | None = None,
        remove: bool = False,
        **options: Any,
    ) -> int:
        """A job; `options` are the engine's (delay_seconds=60, retry_errors=True, ...)."""
        given: dict[str, Any] = {"job_tag": tag} if tag else {}
        if remove:
            given["remove_job_on_complete"] = "true"
        given.update(options)
        text = json.dumps(request)
        result = await self.service.create_job(
            endpoint, Payload(Encoding.JSON, text=text), given, created_by=user
        )
        return result.job_id

    async def finish(self, job_id: int) -> JobState:
        """Wait until the job ends; its final state (a removed job's from its tombstone)."""
        try:
            job = await self.service.wait_for_job(job_id=job_id, wait_seconds=20)
        except JobRemoved as exc:
            return JobState(exc.status)
        assert job.status in (JobState.DONE, JobState.ERROR, JobState.CANCELLED), job
        return job.status

    async def reach(self, job_id: int, states: Collection[JobState], seconds: float = 20) -> Job:
        """Poll until the job is in one of `states` (e.g. scheduled for its next attempt)."""
        for _ in range(int(seconds / 0.02)):
            job = await self.service.get_job(job_id=job_id)
            if job.status in states:
                return job
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {sorted(states)}: {job}")

    async def page(self, path: str, status: int = 200, **kwargs: Any) -> str:
        response = await self.client.get(path, **kwargs)
        assert response.status_code == status, (path, response.status_code, response.text)
        return response.text

    async def post(self, path: str, **headers: str) -> httpx.Response:
        """A form POST from the dashboard's own page (unless `headers` say otherwise)."""
        return await self.client.post(path, headers={**SAME_ORIGIN, **headers})


# The app with users, and creds(user) -> the headers that sign in as that user.
Secured = tuple[Env, Callable[[str], dict[str, str]]]


@asynccontextmanager
async def dashboard(
    db: Database,
    *,
    run_jobs: bool = True,
    clock: Clock | None = None,
    registry: EndpointRegistry | None = None,
    settings: Mapping[str, Any] | None = None,
    **ui: Any,
) -> AsyncIterator[Env]:
    """The app; with run_jobs=False no executor runs (nor do schedules fire by themselves), so
    jobs stay queued. `clock`: a ManualClock for the node instead of the database's;
    `registry`: its endpoints, instead of the built-ins; `settings`: node_for_tests's other
    keywords (Settings fields such as endpoints_file, and env); `ui`: the UiConfig's."""
    node = node_for_tests(
        db,
        node_id="ui-node",
        lease_seconds=30,
        clock=clock,
        registry=registry,
        **(settings or {}),
    )
    service = node.jobs
    app = node.app(run_background=run_jobs, ui=UiConfig(**ui))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://dash.test") as client,
    ):
        yield Env(client, service, node.schedules, node.limits)


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job-id="(\d+)"', html)]


def row_states(html: str) -> dict[int, str]:
    found = re.findall(r'<tr data-job-id="(\d+)" data-status="(\w+)"', html)
    return {int(job_id): state for job_id, state in found}


def counts(html: str) -> dict[str, int]:
    found = re.findall(r'data-state="(\w+)" data-count="(\d+)"', html)
    return {state: int(n) for state, n in found}


def attempt_rows(html: str) -> list[tuple[int, str]]:
    """The job page's attempts table: (attempt, outcome) per row, first to last."""
    found = re.findall(r'<tr data-attempt="(\d+)" data-outcome="(\w+)"', html)
    return [(int(n), outcome) for n, outcome in found]


def page_status(html: str) -> str:
    match = re.search(
        r'<div class="job-head" data-active="\w+">\s*<span class="endpoint">'
        r'[^<]*</span>\s*<span class="badge badge-(\w+)"',
        html,
    )
    assert match, html
    return match.group(1)


def notices(html: str) -> list[str]:
    return re.findall(r'<p class="notice[^"]*">(.*?)</p>', html, re.S)


def schedule_rows(html: str) -> dict[str, str]:
    """The schedules page: name -> "true" (enabled) or "false" (paused), per row."""
    return dict(
        re.findall(r'<tr id="schedule-[^"]*" data-schedule="([^"]*)" data-enabled="(\w+)"', html)
    )


def key_rows(html: str) -> dict[str, dict[str, str]]:
    """The limits page, per key (unescaped): its running / limit text, queued count, source
    and whether it shows at its limit."""
    found = re.findall(
        r'<tr id="key-[^"]*" data-key="([^"]*)" data-source="(\w+)" data-at-limit="(\w+)">'
        r'.*?<span class="running">([^<]*)</span>.*?<td class="num queued">([\d,]+)</td>',
        html,
        re.S,
    )
    return {
        unescape(key): {"usage": unescape(usage), "queued": queued, "source": source, "at": at}
        for key, source, at, usage, queued in found
    }
