"""The dashboard in-process: the real app over a real database (SQLite, PostgreSQL).

Pages are read as HTML text; rows and counts carry data attributes (data-job-id, data-status,
data-count) so these tests do not depend on the layout.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from jobstore.api.ui.views import DISPLAY_LIMIT, format_count
from jobstore.core.jobs import COUNT_CAP
from jobstore.domain.models import JobState
from jobstore.store import Database
from tests.api.ui.pages import (
    SAME_ORIGIN,
    Env,
    Secured,
    counts,
    dashboard,
    page_status,
    row_ids,
)
from tests.support.http import basic

HOSTILE = "<script>alert('x')</script>&\"'"


# -- the job list ----------------------------------------------------------------------------


async def test_list_shows_newest_jobs_and_counts(env: Env) -> None:
    echo = await env.create("/echo", {"hello": "world"}, tag="greeting")
    fail = await env.create("/fail", {"message": "boom"})
    assert await env.finish(echo) is JobState.DONE
    assert await env.finish(fail) is JobState.ERROR

    html = await env.page("/ui")
    assert row_ids(html) == [fail, echo]  # newest first
    assert 'data-status="done"' in html and 'data-status="error"' in html
    assert "greeting" in html and "/echo" in html and "ui-node" in html
    assert '<div class="error-text">boom</div>' in html
    assert counts(html) == {
        "scheduled": 0,
        "queued": 0,
        "running": 0,
        "done": 1,
        "error": 1,
        "cancelled": 0,
    }
    assert 'href="/ui?status=error"' in html  # each count links to its filter
    assert f'href="/ui/jobs/{echo}"' in html
    assert 'data-live="/ui/live"' in html

    response = await env.client.get("/ui")
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_static_files_come_from_the_package(env: Env) -> None:
    html = await env.page("/ui")
    css = re.search(r'href="(/ui/static/ui\.css\?v=\w+)"', html)
    js = re.search(r'src="(/ui/static/ui\.js\?v=\w+)"', html)
    assert css and js, html
    response = await env.client.get(css.group(1))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert ".badge-error" in response.text
    response = await env.client.get(js.group(1))
    assert response.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in response.text
    for asset in (html, response.text):
        assert not re.search(r"(src|href)=\"https?://", asset)  # nothing from other hosts
    assert (await env.client.get("/ui/static/nope.js")).status_code == 404


async def test_list_filters(env: Env) -> None:
    echo = await env.create("/echo", {"n": 1}, tag="first-echo")
    fail = await env.create("/fail", {"message": "no"}, tag="the-failure")
    second = await env.create("/echo", {"n": 2})
    for job_id in (echo, fail, second):
        await env.finish(job_id)

    assert row_ids(await env.page("/ui?status=error")) == [fail]
    assert row_ids(await env.page("/ui?status=done")) == [second, echo]
    assert row_ids(await env.page("/ui?status=active")) == []
    assert row_ids(await env.page("/ui?status=finished")) == [second, fail, echo]
    assert row_ids(await env.page("/ui?endpoint=/echo")) == [second, echo]
    assert row_ids(await env.page("/ui?endpoint=/echo&status=error")) == []
    html = await env.page("/ui?status=error&endpoint=/fail")
    assert '<option value="error" selected>' in html
    assert '<option value="/fail" selected>' in html
    assert 'data-live="/ui/live?status=error&amp;endpoint=%2Ffail"' in html

    # Search: an exact tag, or an id.
    assert row_ids(await env.page("/ui?q=the-failure")) == [fail]
    assert row_ids(await env.page("/ui?q=the-fail")) == []  # exact, not a prefix
    assert row_ids(await env.page(f"/ui?q={echo}")) == [echo]
    assert row_ids(await env.page(f"/ui?q={echo}&status=error")) == []
    html = await env.page("/ui?q=two+words")
    assert row_ids(html) == [] and "exact job tag" in html

    for bad in ("status=bogus", "before=abc", "before=-3", "before=99999999999999999999"):
        html = await env.page(f"/ui?{bad}", status=400)
        assert "Bad request" in html


async def test_keyset_pages(db: Database) -> None:
    async with dashboard(db, run_jobs=False, page_size=2) as env:
        ids = [await env.create("/echo", {"n": n}) for n in range(5)]
        html = await env.page("/ui")
        assert row_ids(html) == [ids[4], ids[3]]
        older = re.search(r'<a href="([^"]+)" rel="next">Older', html)
        assert older and older.group(1) == f"/ui?before={ids[3]}"
        html = await env.page(f"/ui?before={ids[3]}")
        assert row_ids(html) == [ids[2], ids[1]]
        assert 'href="/ui">« Newest' in html
        html = await env.page(f"/ui?before={ids[1]}")
        assert row_ids(html) == [ids[0]] and 'rel="next"' not in html
        # The filters ride along in the page links.
        html = await env.page("/ui?status=queued")
        assert f'href="/ui?status=queued&amp;before={ids[3]}" rel="next"' in html


async def test_live_fragment_is_the_lists_moving_part(idle: Env) -> None:
    first = await idle.create("/echo", {})
    fragment = await idle.page("/ui/live")
    assert "<html" not in fragment and "<form" not in fragment
    assert row_ids(fragment) == [first] and counts(fragment)["queued"] == 1
    second = await idle.create("/echo", {"again": True})
    idle.service._counts.clear()  # the counts are cached for a second; don't wait for it
    fragment = await idle.page("/ui/live?status=queued")
    assert row_ids(fragment) == [second, first] and counts(fragment)["queued"] == 2


def test_counts_above_the_cap_read_as_cap_plus() -> None:
    assert format_count(COUNT_CAP + 1, COUNT_CAP) == "10,000+"
    assert format_count(COUNT_CAP, COUNT_CAP) == "10,000"
    assert format_count(7, COUNT_CAP) == "7"


# -- one job ---------------------------------------------------------------------------------


async def test_job_page(env: Env) -> None:
    job_id = await env.create("/echo", {"answer": 42, "nested": {"list": [1, 2]}}, tag="deep")
    await env.finish(job_id)
    html = await env.page(f"/ui/jobs/{job_id}")
    assert f'<h1>Job {job_id} <span class="tag">deep</span></h1>' in html
    assert page_status(html) == "done"
    assert '<progress max="100" value="100">' in html
    for label in ("Created", "Started", "Finished", "Duration", "Attempt", "Node"):
        assert f"<th>{label}</th>" in html
    assert "<td>1 of 3</td>" in html and "<td>ui-node</td>" in html
    # Request and response, pretty-printed (and escaped: quotes become entities).
    assert "&#34;answer&#34;: 42," in html
    assert html.count("&#34;nested&#34;: {") == 2
    assert "Cancel job" not in html  # finished: nothing to cancel
    assert "data-live=" not in html  # and nothing to refresh


async def test_failed_job_shows_its_status_map(env: Env) -> None:
    job_id = await env.create("/fail", {"message": "disk full"})
    await env.finish(job_id)
    html = await env.page(f"/ui/jobs/{job_id}")
    assert page_status(html) == "error"
    assert '<p class="error-box">disk full</p>' in html
    assert "<tr><th>error_message</th><td>disk full</td></tr>" in html
    assert "No response stored." in html


async def test_queued_job_page_is_live_and_cancellable(idle: Env) -> None:
    job_id = await idle.create("/sleep", {"seconds": 5})
    html = await idle.page(f"/ui/jobs/{job_id}")
    assert page_status(html) == "queued"
    assert f'data-live="/ui/jobs/{job_id}/live"' in html
    assert f'action="/ui/jobs/{job_id}/cancel"' in html and "Cancel job" in html
    assert "No response yet." in html
    fragment = await idle.page(f"/ui/jobs/{job_id}/live")
    assert "<html" not in fragment and '<progress max="100" value="0">' in fragment
    assert "Request" not in fragment  # payloads are not re-sent every refresh


async def test_large_payloads_are_truncated(env: Env) -> None:
    big = {"blob": "x" * (DISPLAY_LIMIT * 2)}
    job_id = await env.create("/echo", big)
    await env.finish(job_id)
    html = await env.page(f"/ui/jobs/{job_id}")
    assert html.count("Truncated: showing 20,000 of 40,") == 2  # request and response
    assert "x" * (DISPLAY_LIMIT * 2) not in html
    huge = {"blob": "y" * 400_000}
    job_id = await env.create("/echo", huge)
    await env.finish(job_id)
    html = await env.page(f"/ui/jobs/{job_id}")
    assert "too large to decode (400,012 bytes)" in html


async def test_missing_and_removed_jobs(env: Env) -> None:
    html = await env.page("/ui/jobs/987654", status=404)
    assert "no job with job_id 987654" in html
    await env.page("/ui/jobs/987654/live", status=404)
    await env.page("/ui/jobs/99999999999999999999", status=404)
    await env.page("/ui/no/such/page", status=404)
    response = await env.client.get("/ui/")
    assert response.status_code == 308 and response.headers["location"] == "/ui"

    job_id = await env.create("/echo", {}, tag="short-lived", remove=True)
    await env.finish(job_id)
    html = await env.page(f"/ui/jobs/{job_id}", status=410)
    assert "was removed" in html and "remove_job_on_complete" in html
    await env.page(f"/ui/jobs/{job_id}/live", status=410)
    html = await env.page("/ui?q=short-lived")
    assert row_ids(html) == [] and "was removed" in html


async def test_everything_is_escaped(env: Env) -> None:
    job_id = await env.create("/echo", {"evil": HOSTILE})
    fail = await env.create("/fail", {"message": HOSTILE})
    await env.finish(job_id)
    await env.finish(fail)
    pages = [
        await env.page(f"/ui/jobs/{job_id}"),
        await env.page(f"/ui/jobs/{fail}"),
        await env.page("/ui"),
        await env.page("/ui?q=" + httpx.QueryParams({"x": HOSTILE})["x"]),
        await env.page("/ui", params={"q": HOSTILE}),
        await env.page("/ui", params={"endpoint": HOSTILE}),
        await env.page("/ui", params={"status": HOSTILE}, status=400),
    ]
    for html in pages:
        assert "<script>alert" not in html
    assert "&lt;script&gt;alert(" in pages[1]  # the error message, shown escaped
    assert 'value="&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#34;&#39;"' in pages[4]


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_a_queued_job(idle: Env) -> None:
    job_id = await idle.create("/sleep", {"seconds": 30})
    response = await idle.client.post(f"/ui/jobs/{job_id}/cancel", headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/jobs/{job_id}?cancel=cancelled"
    html = await idle.page(response.headers["location"])
    assert page_status(html) == "cancelled" and '<p class="notice">Cancelled.</p>' in html
    # Again: it had already ended.
    response = await idle.client.post(
        f"/ui/jobs/{job_id}/cancel", headers={"Origin": "http://dash.test"}
    )
    assert response.headers["location"].endswith("?cancel=already_done")
    response = await idle.client.post("/ui/jobs/424242/cancel", headers=SAME_ORIGIN)
    assert response.status_code == 404


async def test_cancel_a_running_job(env: Env) -> None:
    job_id = await env.create("/sleep", {"seconds": 30})
    for _ in range(500):  # the executor claims it within milliseconds
        if (await env.service.get_job(job_id=job_id)).status is JobState.RUNNING:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail(f"job {job_id} never started")
    response = await env.client.post(f"/ui/jobs/{job_id}/cancel", headers=SAME_ORIGIN)
    assert response.headers["location"] == f"/ui/jobs/{job_id}?cancel=cancel_requested"
    html = await env.page(response.headers["location"])
    # The executor of this node stops the attempt as soon as it sees the request: the page
    # shows the job stopping (its cancel button disabled) or, on a loaded machine where the
    # page came later (`make test` once), already cancelled.
    assert page_status(html) == "cancelled" or ("cancelling" in html and "disabled" in html)
    assert await env.finish(job_id) is JobState.CANCELLED
    assert page_status(await env.page(f"/ui/jobs/{job_id}")) == "cancelled"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://dash.test"},
    ],
    ids=["no-headers", "cross-site", "same-site", "other-origin", "null-origin", "fetch-site-wins"],
)
async def test_cancel_refuses_cross_site_requests(idle: Env, headers: dict[str, str]) -> None:
    job_id = await idle.create("/sleep", {"seconds": 30})
    response = await idle.client.post(f"/ui/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 403 and "Refused" in response.text
    assert (await idle.service.get_job(job_id=job_id)).status is JobState.QUEUED


# -- authentication --------------------------------------------------------------------------


async def test_auth_is_required(secured: Secured) -> None:
    env, _ = secured
    job_id = await env.create("/echo", {}, user="alice")
    for path in ("/ui", "/ui/live", f"/ui/jobs/{job_id}", f"/ui/jobs/{job_id}/live", "/ui/x"):
        response = await env.client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Basic realm="jobstore"'
        assert "alice" not in response.text
    assert (await env.client.get("/ui", headers=basic("alice", "nope"))).status_code == 401
    response = await env.client.post(f"/ui/jobs/{job_id}/cancel", headers=SAME_ORIGIN)
    assert response.status_code == 401
    # The stylesheet and script are public.
    assert (await env.client.get("/ui/static/ui.css")).status_code == 200


async def test_users_see_only_their_own_jobs(
    secured: Secured,
) -> None:
    env, creds = secured
    mine = await env.create("/echo", {}, user="alice", tag="alices")
    theirs = await env.create("/echo", {}, user="bob", tag="bobs")

    html = await env.page("/ui", headers=creds("alice"))
    assert row_ids(html) == [mine] and "Your jobs" in html and "alice" in html
    assert counts(html)["queued"] == 1
    assert row_ids(await env.page("/ui?q=bobs", headers=creds("alice"))) == []
    assert row_ids(await env.page(f"/ui?q={theirs}", headers=creds("alice"))) == []
    await env.page(f"/ui/jobs/{theirs}", status=404, headers=creds("alice"))
    await env.page(f"/ui/jobs/{theirs}/live", status=404, headers=creds("alice"))
    response = await env.client.post(
        f"/ui/jobs/{theirs}/cancel", headers={**creds("alice"), **SAME_ORIGIN}
    )
    assert response.status_code == 404
    assert (await env.service.get_job(job_id=theirs)).status is JobState.QUEUED

    response = await env.client.post(
        f"/ui/jobs/{mine}/cancel", headers={**creds("alice"), **SAME_ORIGIN}
    )
    assert response.status_code == 303
    assert (await env.service.get_job(job_id=mine)).status is JobState.CANCELLED

    html = await env.page("/ui", headers=creds("root"))
    assert row_ids(html) == [theirs, mine] and "All jobs" in html and "root (admin)" in html
    await env.page(f"/ui/jobs/{theirs}", headers=creds("root"))
