"""The dashboard and the job engine: scheduled jobs, run settings, attempts, Retry, and the
bulk Cancel and Retry of a filtered list. In-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re

import pytest

from jobstore.api.ui.views import bulk_notice, seconds_setting
from jobstore.domain.models import JobState
from jobstore.store import Database
from tests.api.ui.pages import (
    Env,
    Secured,
    attempt_rows,
    counts,
    dashboard,
    notices,
    page_status,
    row_ids,
    row_states,
)

NOT_RETRYABLE = "Only a job that ended error or cancelled can be retried; nothing was changed."


def bulk_forms(page: str) -> dict[str, str]:
    """The list's bulk buttons: action -> the URL its form posts to."""
    found = re.findall(r'<form class="bulk-(\w+)" method="post" action="([^"]+)"', page)
    return {action: html.unescape(url) for action, url in found}


async def states(env: Env, *job_ids: int) -> list[JobState]:
    return [(await env.service.get_job(job_id=i)).status for i in job_ids]


# -- scheduled jobs and run settings ---------------------------------------------------------


async def test_a_scheduled_job_shows_as_scheduled(idle: Env) -> None:
    job_id = await idle.create("/echo", {}, delay_seconds=3600)
    job = await idle.service.get_job(job_id=job_id)
    assert job.status is JobState.SCHEDULED and job.run_at is not None
    starts = job.run_at.strftime("%Y-%m-%d %H:%M:%S")

    page = await idle.page("/ui")
    assert row_states(page) == {job_id: "scheduled"}
    assert counts(page)["scheduled"] == 1
    assert f'<div class="starts">starts {starts}</div>' in page
    assert row_ids(await idle.page("/ui?status=scheduled")) == [job_id]
    assert row_ids(await idle.page("/ui?status=active")) == [job_id]
    assert row_ids(await idle.page("/ui?status=queued")) == []
    assert '<option value="scheduled">' in page

    page = await idle.page(f"/ui/jobs/{job_id}")
    assert page_status(page) == "scheduled"
    assert f"starts at {starts} UTC (in 59 min" in page
    assert f"<tr><th>Run at</th><td>{starts} UTC</td></tr>" in page
    assert "None yet: the job has not started." in page
    assert "Cancel job" in page and "Retry job" not in page  # waiting: it can be cancelled
    assert f'data-live="/ui/jobs/{job_id}/live"' in page


async def test_the_job_page_shows_its_run_settings(idle: Env) -> None:
    tuned = await idle.create(
        "/echo",
        {},
        priority=5,
        max_attempts=4,
        retry_errors=True,
        backoff_seconds=2.5,
        timeout_seconds=30,
    )
    page = await idle.page(f"/ui/jobs/{tuned}")
    assert "<tr><th>Priority</th><td>5</td></tr>" in page
    assert "<tr><th>Attempt</th><td>0 of 4</td></tr>" in page
    assert "the next attempt starts after 2.5 s, doubling each time" in page
    assert "<tr><th>Timeout</th><td>30 s</td></tr>" in page

    plain = await idle.create("/echo", {"plain": True})
    page = await idle.page(f"/ui/jobs/{plain}")
    assert "<tr><th>Priority</th><td>0</td></tr>" in page
    assert "<td>no: a failed attempt ends the job</td>" in page
    assert "<tr><th>Timeout</th><td>none</td></tr>" in page
    assert "<th>Run at</th>" not in page


# -- attempts --------------------------------------------------------------------------------


async def test_the_engines_retries_are_listed_as_attempts(env: Env) -> None:
    job_id = await env.create(
        "/fail", {"message": "flaky"}, retry_errors=True, max_attempts=2, backoff_seconds=0
    )
    assert await env.finish(job_id) is JobState.ERROR
    page = await env.page(f"/ui/jobs/{job_id}")
    assert attempt_rows(page) == [(1, "error"), (2, "error")]
    assert page.count('<td class="error-text">flaky</td>') == 2
    assert page.count("<td>ui-node</td>") >= 2
    assert "<tr><th>Attempt</th><td>2 of 2</td></tr>" in page
    # The attempts are part of the live fragment too (they change while the job runs).
    assert attempt_rows(await env.page(f"/ui/jobs/{job_id}/live")) == [(1, "error"), (2, "error")]


async def test_a_timed_out_attempt_reads_timeout(env: Env) -> None:
    job_id = await env.create("/sleep", {"seconds": 30}, timeout_seconds=0.2)
    assert await env.finish(job_id) is JobState.ERROR
    page = await env.page(f"/ui/jobs/{job_id}")
    assert attempt_rows(page) == [(1, "timeout")]
    assert '<span class="badge badge-timeout">timeout</span>' in page


async def test_a_job_backing_off_shows_its_last_error(env: Env) -> None:
    job_id = await env.create(
        "/fail", {"message": "try later"}, retry_errors=True, max_attempts=3, backoff_seconds=3600
    )
    job = await env.reach(job_id, {JobState.SCHEDULED})
    assert job.run_at is not None
    page = await env.page(f"/ui/jobs/{job_id}")
    assert page_status(page) == "scheduled"
    assert '<p class="error-box last-error">The last attempt failed: try later</p>' in page
    assert f"starts at {job.run_at.strftime('%Y-%m-%d %H:%M:%S')} UTC" in page
    assert attempt_rows(page) == [(1, "error")]
    page = await env.page("/ui")
    assert row_states(page) == {job_id: "scheduled"}
    assert '<div class="error-text">last attempt: try later</div>' in page


# -- Retry -----------------------------------------------------------------------------------


async def test_retry_from_the_job_page_runs_a_new_attempt(env: Env) -> None:
    job_id = await env.create("/fail", {"message": "first try"})
    assert await env.finish(job_id) is JobState.ERROR
    page = await env.page(f"/ui/jobs/{job_id}")
    assert f'action="/ui/jobs/{job_id}/retry"' in page and "Retry job" in page
    assert attempt_rows(page) == [(1, "error")]

    response = await env.post(f"/ui/jobs/{job_id}/retry")
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/jobs/{job_id}?retry=retried"
    page = await env.page(response.headers["location"])
    assert notices(page) == ["Retried: the job is queued again; its next run is a new attempt."]

    assert await env.finish(job_id) is JobState.ERROR
    page = await env.page(f"/ui/jobs/{job_id}")
    assert attempt_rows(page) == [(1, "error"), (2, "error")]
    assert "<tr><th>Attempt</th><td>2 of " in page


async def test_retry_a_cancelled_job(idle: Env) -> None:
    job_id = await idle.create("/sleep", {"seconds": 30})
    await idle.post(f"/ui/jobs/{job_id}/cancel")
    page = await idle.page(f"/ui/jobs/{job_id}")
    assert page_status(page) == "cancelled" and "Retry job" in page
    response = await idle.post(f"/ui/jobs/{job_id}/retry")
    assert response.headers["location"] == f"/ui/jobs/{job_id}?retry=retried"
    assert await states(idle, job_id) == [JobState.QUEUED]
    page = await idle.page(f"/ui/jobs/{job_id}")
    assert page_status(page) == "queued" and "Retry job" not in page and "Cancel job" in page


async def test_retry_of_a_done_job_is_refused_and_changes_nothing(env: Env) -> None:
    job_id = await env.create("/echo", {"keep": "me"})
    assert await env.finish(job_id) is JobState.DONE
    before = await env.service.get_job(job_id=job_id)
    page = await env.page(f"/ui/jobs/{job_id}")
    assert "Retry job" not in page and f"/ui/jobs/{job_id}/retry" not in page

    response = await env.post(f"/ui/jobs/{job_id}/retry")
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/jobs/{job_id}?retry=not_retryable"
    page = await env.page(response.headers["location"])
    assert notices(page) == [NOT_RETRYABLE]
    assert page_status(page) == "done"
    assert await env.service.get_job(job_id=job_id) == before
    assert len(await env.service.attempts(job_id)) == 1


async def test_retry_of_a_removed_or_missing_job(env: Env) -> None:
    job_id = await env.create("/fail", {}, tag="gone", remove=True)
    assert await env.finish(job_id) is JobState.ERROR
    response = await env.post(f"/ui/jobs/{job_id}/retry")
    assert response.status_code == 410
    assert "was removed" in response.text and "remove_job_on_complete" in response.text
    response = await env.post("/ui/jobs/424242/retry")
    assert response.status_code == 404 and "no job with job_id 424242" in response.text


async def test_retry_of_another_users_job_is_not_found(secured: Secured) -> None:
    env, creds = secured
    theirs = await env.create("/sleep", {"seconds": 30}, user="bob")
    await env.service.cancel_jobs([theirs])
    response = await env.post(f"/ui/jobs/{theirs}/retry", **creds("alice"))
    assert response.status_code == 404
    assert await states(env, theirs) == [JobState.CANCELLED]
    response = await env.client.post(f"/ui/jobs/{theirs}/retry")  # no credentials
    assert response.status_code == 401
    response = await env.post(f"/ui/jobs/{theirs}/retry", **creds("bob"))
    assert response.status_code == 303
    assert await states(env, theirs) == [JobState.QUEUED]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://dash.test"},
    ],
    ids=["no-headers", "cross-site", "other-origin", "fetch-site-wins"],
)
async def test_retry_and_bulk_refuse_cross_site_requests(
    idle: Env, headers: dict[str, str]
) -> None:
    cancelled = await idle.create("/sleep", {"seconds": 30})
    await idle.service.cancel_jobs([cancelled])
    queued = await idle.create("/sleep", {"seconds": 31})
    for path in (
        f"/ui/jobs/{cancelled}/retry",
        "/ui/bulk/retry?endpoint=/sleep",
        "/ui/bulk/cancel?endpoint=/sleep",
    ):
        response = await idle.client.post(path, headers=headers)
        assert response.status_code == 403 and "Refused" in response.text, path
    assert await states(idle, cancelled, queued) == [JobState.CANCELLED, JobState.QUEUED]


# -- bulk Cancel and Retry -------------------------------------------------------------------


async def test_bulk_cancel_cancels_exactly_the_jobs_the_filter_shows(idle: Env) -> None:
    sleeps = [await idle.create("/sleep", {"seconds": 30 + n}) for n in range(2)]
    sleeps.append(await idle.create("/sleep", {"seconds": 40}, delay_seconds=3600))
    echoes = [await idle.create("/echo", {"n": n}) for n in range(2)]

    page = await idle.page("/ui?endpoint=/sleep")
    assert bulk_forms(page) == {
        "cancel": "/ui/bulk/cancel?endpoint=%2Fsleep",
        "retry": "/ui/bulk/retry?endpoint=%2Fsleep",
    }
    assert 'data-confirm="Cancel every scheduled, queued or running job with endpoint /sleep?"' in (
        page
    )

    # The list's page (`before`) is not a filter: the action takes every page.
    response = await idle.post(f"/ui/bulk/cancel?endpoint=/sleep&before={sleeps[-1]}")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui?endpoint=%2Fsleep&bulk=cancel&cancelled=3"
    page = await idle.page(response.headers["location"])
    assert notices(page) == ["Cancelled 3 jobs."]
    assert set(row_states(page).values()) == {"cancelled"}
    assert await states(idle, *sleeps) == [JobState.CANCELLED] * 3
    assert await states(idle, *echoes) == [JobState.QUEUED] * 2


async def test_bulk_cancel_with_a_status_and_an_endpoint(idle: Env) -> None:
    queued = await idle.create("/sleep", {"seconds": 30})
    scheduled = await idle.create("/sleep", {"seconds": 31}, delay_seconds=3600)
    other = await idle.create("/echo", {})
    response = await idle.post("/ui/bulk/cancel?status=scheduled&endpoint=/sleep")
    assert response.headers["location"].endswith("&bulk=cancel&cancelled=1")
    assert await states(idle, queued, scheduled, other) == [
        JobState.QUEUED,
        JobState.CANCELLED,
        JobState.QUEUED,
    ]


async def test_bulk_cancel_asks_running_jobs_to_stop(env: Env) -> None:
    job_id = await env.create("/sleep", {"seconds": 30})
    await env.reach(job_id, {JobState.RUNNING})
    response = await env.post("/ui/bulk/cancel?status=running")
    assert response.headers["location"] == "/ui?status=running&bulk=cancel&requested=1"
    page = await env.page(response.headers["location"])
    assert notices(page) == ["Asked 1 running job to stop (within a few seconds)."]
    assert await env.finish(job_id) is JobState.CANCELLED
    assert attempt_rows(await env.page(f"/ui/jobs/{job_id}")) == [(1, "cancelled")]


async def test_bulk_retry_of_errored_jobs(env: Env) -> None:
    failed = [await env.create("/fail", {"message": f"no {n}"}) for n in range(2)]
    done = await env.create("/echo", {})
    for job_id in (*failed, done):
        await env.finish(job_id)

    page = await env.page("/ui?status=error")
    assert bulk_forms(page) == {"retry": "/ui/bulk/retry?status=error"}  # none to cancel
    response = await env.post("/ui/bulk/retry?status=error")
    assert response.headers["location"] == "/ui?status=error&bulk=retry&retried=2"
    page = await env.page(response.headers["location"])
    assert notices(page) == ["Retried 2 jobs: queued again, as new attempts."]

    for job_id in failed:
        assert await env.finish(job_id) is JobState.ERROR
        assert [a.attempt for a in await env.service.attempts(job_id)] == [1, 2]
    assert len(await env.service.attempts(done)) == 1
    assert await states(env, done) == [JobState.DONE]


async def test_a_bulk_action_needs_a_filter(idle: Env) -> None:
    jobs = [await idle.create("/sleep", {"seconds": 30 + n}, tag=f"t{n}") for n in range(2)]
    await idle.service.cancel_jobs([jobs[1]])
    for action in ("cancel", "retry"):
        response = await idle.post(f"/ui/bulk/{action}")
        assert response.status_code == 400, action
        assert "Choose a filter first" in response.text
        assert f"A bulk {action} needs a filter" in response.text
        response = await idle.post(f"/ui/bulk/{action}?q=t0")
        assert response.status_code == 400 and "not a search" in response.text
    assert await states(idle, *jobs) == [JobState.QUEUED, JobState.CANCELLED]
    assert (await idle.post("/ui/bulk/delete?status=queued")).status_code == 404

    page = await idle.page("/ui")
    assert bulk_forms(page) == {} and "choose a status or an endpoint first" in page
    assert bulk_forms(await idle.page("/ui?q=t0&status=queued")) == {}
    assert bulk_forms(await idle.page("/ui?status=done")) == {}  # nothing either could touch
    assert list(bulk_forms(await idle.page("/ui?status=active"))) == ["cancel"]
    assert list(bulk_forms(await idle.page("/ui?status=finished"))) == ["retry"]


async def test_a_bulk_action_that_matches_nothing_says_so(idle: Env) -> None:
    job_id = await idle.create("/sleep", {"seconds": 30})
    response = await idle.post("/ui/bulk/retry?status=queued")
    assert response.headers["location"] == "/ui?status=queued&bulk=retry"
    page = await idle.page(response.headers["location"])
    assert notices(page) == ["No error or cancelled job matched: nothing was retried."]
    assert await states(idle, job_id) == [JobState.QUEUED]


async def test_a_bulk_action_stops_at_its_limit_and_says_press_again(db: Database) -> None:
    async with dashboard(db, run_jobs=False, bulk_limit=2) as env:
        jobs = [await env.create("/sleep", {"seconds": 30 + n}) for n in range(3)]
        page = await env.page("/ui?status=queued")
        assert "on all pages (up to 2 a press)" in page
        response = await env.post("/ui/bulk/cancel?status=queued")
        assert response.headers["location"] == "/ui?status=queued&bulk=cancel&cancelled=2&more=1"
        page = await env.page(response.headers["location"])
        assert notices(page) == [
            "Cancelled 2 jobs. More jobs match than one press handles: "
            "press Cancel again for the rest."
        ]
        assert await states(env, *jobs) == [JobState.QUEUED, JobState.CANCELLED, JobState.CANCELLED]
        response = await env.post("/ui/bulk/cancel?status=queued")
        assert response.headers["location"] == "/ui?status=queued&bulk=cancel&cancelled=1"
        assert await states(env, *jobs) == [JobState.CANCELLED] * 3


async def test_a_bulk_action_touches_only_the_users_own_jobs(secured: Secured) -> None:
    env, creds = secured
    mine = [await env.create("/sleep", {"seconds": 30 + n}, user="alice") for n in range(2)]
    theirs = await env.create("/sleep", {"seconds": 40}, user="bob")
    response = await env.client.post("/ui/bulk/cancel?endpoint=/sleep", headers={})
    assert response.status_code == 401
    response = await env.post("/ui/bulk/cancel?endpoint=/sleep", **creds("alice"))
    assert response.headers["location"].endswith("&bulk=cancel&cancelled=2")
    assert await states(env, *mine, theirs) == [JobState.CANCELLED] * 2 + [JobState.QUEUED]


def test_the_bulk_notice_reads_only_numbers() -> None:
    assert bulk_notice({"bulk": "cancel", "cancelled": "1", "requested": "2"}) == (
        "Cancelled 1 job. Asked 2 running jobs to stop (within a few seconds)."
    )
    assert bulk_notice({"bulk": "retry", "retried": "3", "skipped": "1"}) == (
        "Retried 3 jobs: queued again, as new attempts. "
        "1 job changed state meanwhile and was left alone."
    )
    assert bulk_notice({"bulk": "cancel", "cancelled": "<b>"}) is None
    assert bulk_notice({"bulk": "cancel", "cancelled": "9" * 40}) is None
    assert bulk_notice({"bulk": "drop", "cancelled": "1"}) is None
    assert bulk_notice({}) is None


def test_run_settings_read_as_set() -> None:
    assert seconds_setting(30.0) == "30 s"
    assert seconds_setting(0.25) == "0.25 s"
    assert seconds_setting(7200) == "7,200 s (2 h 0 min)"
    assert seconds_setting(None) == ""
