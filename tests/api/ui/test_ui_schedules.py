"""The dashboard's schedules page, in-process over a real database (SQLite, PostgreSQL):
schedules made through the core's ScheduleService, fired by `fire_due` on a clock the test
moves, or from the page's own buttons; the job page's link back; users; escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import markupsafe
import pytest

from jobstore.api.app import create_app
from jobstore.cli.node import node_for_tests
from jobstore.core.schedules import NewSchedule
from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.store import Database
from tests.api.ui.pages import Env, Secured, dashboard, notices, schedule_rows

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ECHO = Payload(Encoding.JSON, text='{"n": 1}')
HOSTILE = "<script>alert('x')</script>&\"'"
ESCAPED = str(markupsafe.escape(HOSTILE))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def manual(db: Database, clock: ManualClock) -> AsyncIterator[Env]:
    """No executor and no firing loop, on a clock only the test moves."""
    async with dashboard(db, run_jobs=False, clock=clock) as e:
        yield e


def every(name: str, seconds: float = 60, **kwargs: Any) -> NewSchedule:
    given = {"start_at": START, **kwargs}
    return NewSchedule(name=name, endpoint="/echo", payload=ECHO, every_seconds=seconds, **given)


def yearly(name: str, **kwargs: Any) -> NewSchedule:
    """A schedule that does not fire by itself while a test runs."""
    return NewSchedule(name=name, endpoint="/echo", payload=ECHO, cron="0 0 1 1 *", **kwargs)


def row(html: str, name: str) -> str:
    """The schedules table's row of `name`, as HTML."""
    match = re.search(rf'<tr id="schedule-{re.escape(name)}".*?</tr>', html, re.S)
    assert match, html
    return match.group(0)


def cell(row_html: str, css_class: str) -> str:
    """The text of the row's cell of that class, tags dropped, whitespace squeezed."""
    match = re.search(rf'<td class="[^"]*\b{css_class}\b[^"]*">(.*?)</td>', row_html, re.S)
    assert match, row_html
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


# -- the page ------------------------------------------------------------------------------------


async def test_empty_state_and_the_nav_link(manual: Env) -> None:
    assert 'href="/ui/schedules">Schedules</a>' in await manual.page("/ui")
    html = await manual.page("/ui/schedules")
    assert schedule_rows(html) == {}
    assert "No recurring schedules." in html
    assert 'data-live="/ui/schedules/live"' in html
    assert "No recurring schedules." in await manual.page("/ui/schedules/live")


async def test_lists_schedules_with_their_next_fire_time(manual: Env) -> None:
    await manual.schedules.create(
        NewSchedule(
            name="nightly",
            endpoint="/echo",
            payload=ECHO,
            cron="0 3 * * *",
            timezone="Europe/Berlin",
            misfire="once",
        )
    )
    await manual.schedules.create(
        every("tick", 90, start_at=datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))
    )
    html = await manual.page("/ui/schedules")
    assert schedule_rows(html) == {"nightly": "true", "tick": "true"}

    nightly = row(html, "nightly")
    assert cell(nightly, "fires") == "cron 0 3 * * * Europe/Berlin"
    # 03:00 in Berlin is 01:00 UTC in summer; 13 hours from the test's clock.
    assert (
        cell(nightly, "next-fire") == "2026-06-02 01:00:00 2026-06-02 03:00:00 CEST in 13 h 0 min"
    )
    assert ">once<" in nightly and ">api<" in nightly
    assert cell(nightly, "last-fire") == "—"
    assert cell(nightly, "last-job") == "none yet"
    assert "badge-enabled" in nightly

    tick = row(html, "tick")
    assert cell(tick, "fires") == "every 90 s (1 min 30 s) from 2026-06-01 12:00:30 UTC"
    assert cell(tick, "next-fire") == "2026-06-01 12:00:30 in 30.0 s"
    assert ">skip<" in tick
    assert row(await manual.page("/ui/schedules/live"), "tick") == tick


async def test_fire_due_shows_the_last_job_and_its_state(manual: Env, clock: ManualClock) -> None:
    await manual.schedules.create(every("tick"))
    fired = await manual.schedules.fire_due()
    [job_id] = fired.jobs["tick"]

    tick = row(await manual.page("/ui/schedules"), "tick")
    assert cell(tick, "last-fire") == "2026-06-01 12:00:00"
    assert cell(tick, "next-fire") == "2026-06-01 12:01:00 in 1 min 0 s"
    assert f'<a href="/ui/jobs/{job_id}">job {job_id}</a>' in tick
    assert 'data-status="queued"' in tick

    # The state is the job's now, read on every view.
    await manual.service.cancel_jobs([job_id])
    tick = row(await manual.page("/ui/schedules/live"), "tick")
    assert 'data-status="cancelled"' in tick and 'data-status="queued"' not in tick

    clock.advance(60)
    [second] = (await manual.schedules.fire_due()).jobs["tick"]
    tick = row(await manual.page("/ui/schedules"), "tick")
    assert cell(tick, "last-fire") == "2026-06-01 12:01:00"
    assert f"job {second}" in tick and f"job {job_id}<" not in tick

    # Its job page names the schedule, links back to it and shows the fire time.
    job_page = await manual.page(f"/ui/jobs/{second}")
    assert 'Schedule: <a href="/ui/schedules#schedule-tick">tick</a>' in job_page
    assert "fire time 2026-06-01 12:01:00 UTC" in job_page


async def test_a_removed_last_job_shows_its_final_state(env: Env) -> None:
    await env.schedules.create(yearly("cleanup", options={"remove_job_on_complete": "true"}))
    job_id = await env.schedules.fire_now("cleanup")
    assert await env.finish(job_id) is JobState.DONE
    cleanup = row(await env.page("/ui/schedules"), "cleanup")
    assert cell(cleanup, "last-job") == f"job {job_id} done removed"


# -- buttons -------------------------------------------------------------------------------------


async def test_fire_now_from_the_page(manual: Env) -> None:
    await manual.schedules.create(every("tick"))
    response = await manual.post("/ui/schedules/fire?name=tick")
    assert response.status_code == 303
    location = response.headers["location"]
    job_id = int(re.fullmatch(r"/ui/schedules\?done=fire&name=tick&job=(\d+)", location)[1])

    html = await manual.page(location)
    assert notices(html) == [
        f'Fired tick now, outside its fire times: <a href="/ui/jobs/{job_id}">job {job_id}</a>.'
    ]
    assert f"job {job_id}" in cell(row(html, "tick"), "last-job")
    assert cell(row(html, "tick"), "last-fire") == "—"  # not one of its fire times
    job = await manual.service.get_job(job_id=job_id)
    assert job.options["schedule"] == "tick" and "fire_time" not in job.options
    job_page = await manual.page(f"/ui/jobs/{job_id}")
    assert 'href="/ui/schedules#schedule-tick">tick</a> · fired by hand' in job_page


async def test_pause_and_resume_from_the_page(manual: Env, clock: ManualClock) -> None:
    await manual.schedules.create(every("tick"))
    response = await manual.post("/ui/schedules/pause?name=tick")
    assert response.status_code == 303
    html = await manual.page(response.headers["location"])
    assert notices(html) == ["Paused tick: it does not fire until it is resumed."]
    assert schedule_rows(html) == {"tick": "false"}
    tick = row(html, "tick")
    assert cell(tick, "next-fire") == "— (paused)" and "badge-paused" in tick
    assert 'action="/ui/schedules/resume?name=tick"' in tick
    assert 'action="/ui/schedules/pause?name=tick"' not in tick
    assert (await manual.schedules.get("tick")).enabled is False

    clock.advance(150)  # resumed, it fires next at its first fire time from now
    response = await manual.post("/ui/schedules/resume?name=tick")
    html = await manual.page(response.headers["location"])
    assert schedule_rows(html) == {"tick": "true"}
    assert cell(row(html, "tick"), "next-fire") == "2026-06-01 12:03:00 in 30.0 s"
    assert (await manual.schedules.get("tick")).enabled is True


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": ""}, {"Origin": "http://evil.test"}],
)
async def test_buttons_refuse_cross_site_requests(manual: Env, headers: dict[str, str]) -> None:
    await manual.schedules.create(every("tick"))
    for action in ("pause", "fire"):
        response = await manual.client.post(f"/ui/schedules/{action}?name=tick", headers=headers)
        assert response.status_code == 403, response.text
    plain = await manual.client.post("/ui/schedules/pause?name=tick")  # no Origin at all
    assert plain.status_code == 403
    schedule = await manual.schedules.get("tick")
    assert schedule.enabled and schedule.last_job_id is None


async def test_unknown_schedules_and_actions(manual: Env) -> None:
    for path in (
        "/ui/schedules/pause?name=nope",
        "/ui/schedules/fire",
        "/ui/schedules/drop?name=x",
    ):
        response = await manual.post(path)
        assert response.status_code == 404, (path, response.text)
        assert "error-box" in response.text
    # A notice needs a well-formed name (and job id): anything else shows none.
    for query in ("done=pause&name=a%20b", "done=fire&name=tick&job=x", "done=drop&name=tick"):
        assert notices(await manual.page(f"/ui/schedules?{query}")) == []


# -- users and escaping --------------------------------------------------------------------------


async def test_users_see_and_act_on_only_their_own_schedules(secured: Secured) -> None:
    env, creds = secured
    await env.schedules.create(yearly("alices", created_by="alice"))
    await env.schedules.create(yearly("bobs", created_by="bob"))

    assert (await env.client.get("/ui/schedules")).status_code == 401
    assert (await env.client.get("/ui/schedules/live")).status_code == 401
    assert (await env.post("/ui/schedules/pause?name=bobs")).status_code == 401

    html = await env.page("/ui/schedules", headers=creds("alice"))
    assert schedule_rows(html) == {"alices": "true"}
    assert 'aria-label="Your schedules"' in html
    refused = await env.post("/ui/schedules/pause?name=bobs", **creds("alice"))
    assert refused.status_code == 404
    assert (await env.schedules.get("bobs")).enabled is True
    fired = await env.post("/ui/schedules/fire?name=alices", **creds("alice"))
    assert fired.status_code == 303
    job_id = int(fired.headers["location"].rsplit("=", 1)[1])
    assert (await env.service.get_job(job_id=job_id)).created_by == "alice"

    html = await env.page("/ui/schedules", headers=creds("root"))
    assert schedule_rows(html) == {"alices": "true", "bobs": "true"}
    assert 'aria-label="All schedules"' in html
    assert (await env.post("/ui/schedules/pause?name=bobs", **creds("root"))).status_code == 303
    assert (await env.schedules.get("bobs")).enabled is False


async def test_everything_is_escaped(db: Database, manual: Env) -> None:
    await manual.schedules.create(every("tick"))
    await manual.schedules.fire_now("tick")
    async with db.transaction() as conn:  # edited by hand: no create would take these
        await db.schedules.schedule_update(
            conn,
            "tick",
            {
                "endpoint": HOSTILE,
                "cron": HOSTILE,
                "every_seconds": None,
                "timezone": HOSTILE,
                "source": "<b>&'\"</b>",  # 16 characters at most
                "created_by": HOSTILE,
            },
        )
    html = await manual.page("/ui/schedules")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert html.count(ESCAPED) == 4  # endpoint, cron, zone and who made it
    assert "&lt;b&gt;&amp;&#39;&#34;&lt;/b&gt;" in html  # the source
    assert f"by {ESCAPED}" in html

    job_id = await manual.create("/echo", {}, schedule=HOSTILE, fire_time=HOSTILE)
    job_page = await manual.page(f"/ui/jobs/{job_id}")
    assert "<script>" not in job_page
    assert 'Schedule: <a href="/ui/schedules#schedule-%3Cscript%3E' in job_page
    assert f">{ESCAPED}</a> · fire time {ESCAPED} UTC" in job_page


async def test_without_a_schedule_service_there_is_no_schedules_page(db: Database) -> None:
    node = node_for_tests(db, node_id="ui-node")
    app = create_app(node.jobs)  # as an embedding app may build it
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash.test") as client:
        assert 'href="/ui/schedules"' not in (await client.get("/ui")).text
        assert (await client.get("/ui/schedules")).status_code == 404
        job = await node.jobs.create_job(
            "/echo", ECHO, {"schedule": "tick", "fire_time": START.isoformat()}
        )
        job_page = (await client.get(f"/ui/jobs/{job.job_id}")).text
        assert "Schedule: tick · fire time 2026-06-01 12:00:00 UTC" in job_page
