"""The dashboard's limits page, in-process over a real database (SQLite, PostgreSQL): keyed
jobs made through the JobService and started by the store's limited claim (no executor, so
the running counts stay put), named limits set through the LimitService or the page's own
form; the job page's link; users; escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import markupsafe
import pytest
import sqlalchemy as sa

from jobstore.api.app import create_app
from jobstore.api.ui.limits import MAX_ROWS
from jobstore.cli.node import node_for_tests
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import LimitNotFound
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from jobstore.store.tables import concurrency_limits
from tests.api.ui.pages import SAME_ORIGIN, Env, Secured, dashboard, key_rows, notices

START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>&\"'"
ESCAPED = str(markupsafe.escape(HOSTILE))
EMPTY = "No concurrency keys"
ECHO = Payload(Encoding.JSON, text="{}")


@endpoint("/per-customer", concurrency_limit=2)
async def per_customer(request: Any, ctx: JobContext) -> Any:
    """Never run here: its jobs are claimed by the test, which never finishes them."""
    return request


@pytest.fixture
async def manual(db: Database) -> AsyncIterator[Env]:
    """No executor, on a clock only the test moves; the built-ins and /per-customer."""
    registry = default_registry()
    registry.add(getattr(per_customer, MARK))
    async with dashboard(db, run_jobs=False, clock=ManualClock(START), registry=registry) as e:
        yield e


async def keyed(env: Env, key: str, count: int = 1, endpoint: str = "/echo") -> list[int]:
    return [await env.create(endpoint, {}, concurrency_key=key) for _ in range(count)]


async def start_jobs(db: Database, env: Env) -> list[int]:
    """Start what the limits allow, as an executor's limited claim would (without running
    the handlers: the jobs stay running)."""
    now = env.service.clock.now()
    async with db.transaction() as conn:
        got = await db.limits.job_claim_limited(
            conn,
            node="ui-node",
            endpoints=env.service.registry.limits(),
            limit=100,
            now=now,
            lease_until=now + timedelta(minutes=5),
        )
    return [c.job_id for c in got.claimed]


async def submit(env: Env, fields: dict[str, str], **headers: str) -> httpx.Response:
    """The set form, posted from the page (unless `headers` say otherwise)."""
    return await env.client.post("/ui/limits/set", data=fields, headers={**SAME_ORIGIN, **headers})


def row(html: str, key: str) -> str:
    """The limits table's row of `key` (a plain one), as HTML."""
    match = re.search(rf'<tr id="key-{re.escape(key)}".*?</tr>', html, re.S)
    assert match, html
    return match.group(0)


def remove_url(key: str) -> str:
    return "/ui/limits/delete?" + urlencode({"key": key})


# -- the page ------------------------------------------------------------------------------------


async def test_empty_state_and_the_nav_link(manual: Env) -> None:
    assert 'href="/ui/limits">Limits</a>' in await manual.page("/ui")
    html = await manual.page("/ui/limits")
    assert key_rows(html) == {}
    assert EMPTY in html and "<code>jobstore limits set KEY N</code> or the form above" in html
    assert 'data-live="/ui/limits/live"' in html
    assert 'action="/ui/limits/set"' in html  # no authentication: anyone may set one
    live = await manual.page("/ui/limits/live")
    assert EMPTY in live and "<form" not in live.split("<tbody>")[1].split("</tbody>")[0]


async def test_running_against_named_limits(db: Database, manual: Env) -> None:
    await manual.limits.set("acme", 2, by="ops")
    await manual.limits.set("frozen", 0)
    await manual.limits.set("spare", 5)
    await keyed(manual, "acme", 3)
    await keyed(manual, "frozen", 1)
    await keyed(manual, "free-for-all", 1)
    await manual.create("/echo", {})  # no key: not on this page
    assert len(await start_jobs(db, manual)) == 3  # acme 2, free-for-all 1; frozen held

    html = await manual.page("/ui/limits")
    assert key_rows(html) == {
        "acme": {"usage": "2 / 2", "queued": "1", "source": "named", "at": "true"},
        "free-for-all": {"usage": "1 / \u2013", "queued": "0", "source": "none", "at": "false"},
        "frozen": {"usage": "0 / 0", "queued": "1", "source": "named", "at": "true"},
        "spare": {"usage": "0 / 5", "queued": "0", "source": "named", "at": "false"},
    }
    acme = row(html, "acme")
    assert '<span class="badge badge-at-limit"' in acme and ">at limit</span>" in acme
    assert "set 2026-06-01 12:00:00 UTC by ops" in acme
    assert f'action="{remove_url("acme")}"' in acme
    frozen = row(html, "frozen")
    assert ">held</span>" in frozen
    free = row(html, "free-for-all")
    assert "badge" not in free and "none: unlimited" in free and "<form" not in free
    assert EMPTY not in html
    assert key_rows(await manual.page("/ui/limits/live")) == key_rows(html)


async def test_an_endpoint_limit_and_a_named_one_over_it(db: Database, manual: Env) -> None:
    await keyed(manual, "cust-1", 3, endpoint="/per-customer")
    assert len(await start_jobs(db, manual)) == 2
    rows = key_rows(await manual.page("/ui/limits"))
    assert rows == {"cust-1": {"usage": "2 / 2", "queued": "1", "source": "endpoint", "at": "true"}}
    html = await manual.page("/ui/limits/live")
    assert "its endpoint's concurrency_limit" in html
    assert "/ui/limits/delete" not in html  # nothing named to remove

    await manual.limits.set("cust-1", 3)
    assert len(await start_jobs(db, manual)) == 1
    rows = key_rows(await manual.page("/ui/limits/live"))
    assert rows["cust-1"] == {"usage": "3 / 3", "queued": "0", "source": "named", "at": "true"}
    await manual.limits.set("cust-1", 10)
    rows = key_rows(await manual.page("/ui/limits/live"))
    assert rows["cust-1"] == {"usage": "3 / 10", "queued": "0", "source": "named", "at": "false"}


async def test_the_job_page_names_its_key(manual: Env) -> None:
    [keyed_id] = await keyed(manual, "acme corp/eu#1")
    plain_id = await manual.create("/echo", {})
    html = await manual.page(f"/ui/jobs/{keyed_id}")
    assert (
        '<tr class="concurrency-key"><th>Concurrency key</th>'
        '<td><a href="/ui/limits#key-acme%20corp/eu%231">acme corp/eu#1</a></td></tr>'
    ) in html
    assert 'class="concurrency-key"' in await manual.page(f"/ui/jobs/{keyed_id}/live")
    assert "Concurrency key" not in await manual.page(f"/ui/jobs/{plain_id}")
    # The link's target: the row whose id is the key's.
    assert 'id="key-acme corp/eu#1"' in await manual.page("/ui/limits")


async def test_more_keys_than_the_table_shows(db: Database, manual: Env) -> None:
    rows = [
        {"key": f"k{n:05}", "max_running": 1, "updated_at": START, "updated_by": None}
        for n in range(MAX_ROWS + 2)
    ]
    async with db.transaction() as conn:
        await conn.execute(sa.insert(concurrency_limits), rows)
    html = await manual.page("/ui/limits/live")
    shown = key_rows(html)
    assert len(shown) == MAX_ROWS and "k00000" in shown and f"k{MAX_ROWS:05}" not in shown
    assert f"2 more keys are not shown: the table shows the first {MAX_ROWS:,}" in html


# -- the form and the remove button --------------------------------------------------------------


async def test_set_change_and_remove_a_limit_from_the_page(manual: Env) -> None:
    response = await submit(manual, {"key": "acme", "max_running": "3"})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location == "/ui/limits?done=set&key=acme&n=3"
    html = await manual.page(location)
    assert notices(html) == ["Set the limit of key acme to 3."]
    assert key_rows(html)["acme"]["usage"] == "0 / 3"
    named = await manual.limits.get("acme")
    assert (named.max_running, named.updated_by) == (3, None)

    await submit(manual, {"key": "acme", "max_running": " 1 "})
    assert (await manual.limits.get("acme")).max_running == 1

    response = await manual.post(remove_url("acme"))
    assert response.status_code == 303
    html = await manual.page(response.headers["location"])
    assert notices(html)[0].startswith("Removed the named limit of key acme:")
    assert key_rows(html) == {} and EMPTY in html
    with pytest.raises(LimitNotFound):
        await manual.limits.get("acme")
    again = await manual.post(remove_url("acme"))
    assert again.status_code == 404 and "no concurrency limit is set for key" in again.text


async def test_keys_the_url_path_would_mangle(manual: Env) -> None:
    for key in ("..", "a/b", "?x=1&y", "50% off", " spaced "):
        response = await submit(manual, {"key": key, "max_running": "1"})
        assert response.status_code == 303, (key, response.text)
        assert (await manual.limits.get(key)).max_running == 1
        assert key in key_rows(await manual.page(response.headers["location"]))
        assert (await manual.post(remove_url(key))).status_code == 303, key
    assert await manual.limits.list() == []


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"key": "acme", "max_running": "x"}, "must be a whole number from 0 to 1000000"),
        ({"key": "acme", "max_running": "-1"}, "must be a whole number"),
        ({"key": "acme", "max_running": "1000001"}, "from 0 to 1000000, got 1000001"),
        ({"key": "acme", "max_running": "9" * 5000}, "must be a whole number"),
        ({"key": "acme"}, "must be a whole number"),
        ({"key": "", "max_running": "1"}, "must not be empty"),
        ({"max_running": "1"}, "must not be empty"),
        ({"key": "a\nb", "max_running": "1"}, "without control characters"),
        ({"key": "k" * 129, "max_running": "1"}, "1 to 128 characters"),
    ],
)
async def test_the_form_refuses_what_is_not_a_limit(
    manual: Env, fields: dict[str, str], says: str
) -> None:
    response = await submit(manual, fields)
    assert response.status_code == 400, response.text
    assert says in markupsafe.Markup(response.text).unescape()
    assert await manual.limits.list() == []


async def test_the_form_must_be_a_form(manual: Env) -> None:
    as_json = await manual.client.post(
        "/ui/limits/set", json={"key": "acme", "max_running": 1}, headers=SAME_ORIGIN
    )
    assert as_json.status_code == 400 and "x-www-form-urlencoded" in as_json.text
    too_big = await submit(manual, {"key": "acme", "max_running": "1", "pad": "x" * 10_000})
    assert too_big.status_code == 400 and "larger than" in too_big.text
    assert await manual.limits.list() == []


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": ""}, {"Origin": "http://evil.test"}],
)
async def test_set_and_remove_refuse_cross_site_requests(
    manual: Env, headers: dict[str, str]
) -> None:
    await manual.limits.set("acme", 2)
    fields = {"key": "acme", "max_running": "9"}
    hostile = {"Content-Type": "application/x-www-form-urlencoded"}
    for response in (
        await manual.client.post("/ui/limits/set", content=urlencode(fields), headers=headers),
        await manual.client.post(remove_url("acme"), headers=headers),
        await manual.client.post("/ui/limits/set", content=urlencode(fields), headers=hostile),
        await manual.client.post(remove_url("acme")),  # neither Origin nor Sec-Fetch-Site
    ):
        assert response.status_code == 403, response.text
        assert "only from the dashboard&#39;s own page" in response.text
    assert (await manual.limits.get("acme")).max_running == 2


async def test_forged_notices_are_not_shown(manual: Env) -> None:
    for query in (
        "done=set&key=a%0Ab&n=1",
        "done=set&key=acme&n=1000001",
        "done=set&key=acme&n=x",
        "done=set&key=&n=1",
        "done=drop&key=acme",
        "done=delete",
    ):
        assert notices(await manual.page(f"/ui/limits?{query}")) == [], query
    assert notices(await manual.page("/ui/limits?done=set&key=acme&n=0012")) == [
        "Set the limit of key acme to 12."
    ]


# -- users and escaping --------------------------------------------------------------------------


async def test_users_read_every_key_and_only_admins_change_limits(secured: Secured) -> None:
    env, creds = secured
    await env.limits.set("shared", 1)
    await env.create("/echo", {}, user="bob", concurrency_key="bobs-customer")
    fields = {"key": "shared", "max_running": "5"}

    assert (await env.client.get("/ui/limits")).status_code == 401
    assert (await env.client.get("/ui/limits/live")).status_code == 401
    assert (await submit(env, fields)).status_code == 401
    assert (await env.post(remove_url("shared"))).status_code == 401

    # A key is no one's: alice sees bob's key too, and the shared limit, but changes nothing.
    html = await env.page("/ui/limits", headers=creds("alice"))
    assert set(key_rows(html)) == {"bobs-customer", "shared"}
    assert "only an admin changes them" in html
    assert "/ui/limits/set" not in html and "/ui/limits/delete" not in html
    assert "/ui/limits/delete" not in await env.page("/ui/limits/live", headers=creds("alice"))
    refused = await submit(env, fields, **creds("alice"))
    assert refused.status_code == 403 and "Only an admin sets or removes" in refused.text
    assert (await env.post(remove_url("shared"), **creds("alice"))).status_code == 403
    assert (await env.limits.get("shared")).max_running == 1

    html = await env.page("/ui/limits", headers=creds("root"))
    assert 'action="/ui/limits/set"' in html and "only an admin changes them" not in html
    assert (await submit(env, fields, **creds("root"))).status_code == 303
    named = await env.limits.get("shared")
    assert (named.max_running, named.updated_by) == (5, "root")
    assert " by root</div>" in await env.page("/ui/limits/live", headers=creds("root"))
    assert (await env.post(remove_url("shared"), **creds("root"))).status_code == 303
    assert [n.key for n in await env.limits.list()] == []


async def test_everything_is_escaped(db: Database, manual: Env) -> None:
    await manual.limits.set(HOSTILE, 1, by=HOSTILE)
    first, _ = await keyed(manual, HOSTILE, 2)
    assert await start_jobs(db, manual) == [first]
    html = await manual.page("/ui/limits")
    assert "<script>" not in html
    assert key_rows(html) == {
        HOSTILE: {"usage": "1 / 1", "queued": "1", "source": "named", "at": "true"}
    }
    assert f'<tr id="key-{ESCAPED}" data-key="{ESCAPED}"' in html
    assert f'<td class="key">{ESCAPED}</td>' in html
    assert f" by {ESCAPED}</div>" in html
    assert f'action="/ui/limits/delete?key={quote(HOSTILE, safe="/")}"' in html
    assert f'data-confirm="Remove the named limit of key {ESCAPED}?"' in html

    job_page = await manual.page(f"/ui/jobs/{first}")
    assert "<script>" not in job_page
    assert f'<a href="/ui/limits#key-{quote(HOSTILE, safe="/")}">{ESCAPED}</a>' in job_page

    response = await manual.post(remove_url(HOSTILE))
    assert response.status_code == 303
    html = await manual.page(response.headers["location"])
    assert "<script>" not in html
    assert notices(html)[0].startswith(f"Removed the named limit of key {ESCAPED}:")


async def test_without_a_limit_service_there_is_no_limits_page(db: Database) -> None:
    node = node_for_tests(db, node_id="ui-node")
    app = create_app(node.jobs)  # as an embedding app may build it
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash.test") as client:
        assert 'href="/ui/limits"' not in (await client.get("/ui")).text
        assert (await client.get("/ui/limits")).status_code == 404
        job = await node.jobs.create_job("/echo", ECHO, {"concurrency_key": "acme"})
        job_page = (await client.get(f"/ui/jobs/{job.job_id}")).text
        assert "<th>Concurrency key</th><td>acme</td>" in job_page
