"""The dashboard's endpoints page, in-process over a real database (SQLite, PostgreSQL): a
node built from a real endpoints file (HTTP endpoints whose URL and headers read secrets from
the environment) and a real Kinetica upstream setting; the python endpoints' defaults and
limits; the link to the filtered job list; the nav link; users; escaping; and that no secret
of an upstream reaches the page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from jobstore.core.accounts import Authenticator
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, endpoint
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database
from tests.api.ui.pages import Env, dashboard, row_ids
from tests.support.http import basic

SECRET = "secret-value"
PASSWORD = "pw-in-url"
KINETICA_PASSWORD = "kinetica-secret"
ODD = "/odd name&x=1?#"
HOSTILE = "/<b>x</b>&\"'"
ENDPOINTS_FILE = f"""
[endpoints."/thumbs"]
url = "http://127.0.0.1:9/x"
headers = {{ Authorization = "Bearer ${{env:TOKEN}}" }}

[endpoints."/hidden"]
url = "http://robot:${{env:PASSWORD}}@upstream.test:8443/private/path?sig=${{env:TOKEN}}"
mode = "callback"
retryable = false
timeout_seconds = 90
concurrency_limit = 3
headers = {{ X-Api-Key = "${{env:TOKEN}}" }}

[endpoints.{ODD!r}]
url = "https://odd.test/"
description = "an odd name"
"""
ENV = {"TOKEN": SECRET, "PASSWORD": PASSWORD}


@endpoint(
    "/tuned",
    max_attempts=7,
    timeout_seconds=45,
    retry_errors=True,
    backoff_seconds=2,
    concurrency_limit=2,
    global_limit=5,
)
async def tuned(request: Any, ctx: JobContext) -> Any:
    """Resize an image.

    (Only the first line is the description.)"""
    return request


@endpoint(HOSTILE)
async def hostile(request: Any, ctx: JobContext) -> Any:
    """<script>alert('x')</script>"""
    return request


def registry() -> Any:
    found = default_registry()
    found.add(getattr(tuned, MARK))
    found.add(getattr(hostile, MARK))
    return found


@pytest.fixture
def endpoints_file(tmp_path: Path) -> str:
    path = tmp_path / "endpoints.toml"
    path.write_text(ENDPOINTS_FILE, encoding="utf-8")
    return str(path)


@pytest.fixture
async def env(db: Database, endpoints_file: str) -> AsyncIterator[Env]:
    """No executor (nothing calls the upstreams); the built-ins, /tuned, a hostile name and
    the endpoints file's HTTP endpoints; no Kinetica upstream."""
    settings = {"endpoints_file": endpoints_file, "env": ENV}
    async with dashboard(db, run_jobs=False, registry=registry(), settings=settings) as e:
        yield e


@pytest.fixture
async def upstream(db: Database, endpoints_file: str) -> AsyncIterator[Env]:
    """As `env`, and a Kinetica upstream (with a password from the environment) running
    every other name."""
    settings = {
        "endpoints_file": endpoints_file,
        "kinetica_upstream": "http://127.0.0.1:9",
        "env": {
            **ENV,
            "JOBSTORE_KINETICA_UPSTREAM_USER": "admin",
            "JOBSTORE_KINETICA_UPSTREAM_PASSWORD": KINETICA_PASSWORD,
        },
    }
    async with dashboard(db, run_jobs=False, settings=settings) as e:
        yield e


def rows(html: str) -> dict[str, dict[str, str]]:
    """The endpoints table, per name (unescaped): kind, upstream host, and each cell's text."""
    found = re.findall(
        r'<tr data-endpoint="([^"]*)" data-kind="([^"]*)" '
        r'data-upstream="([^"]*)">(.*?)</tr>',
        html,
        re.S,
    )
    table = {}
    for name, kind, host, body in found:
        cells = dict(re.findall(r'<td class="([\w -]+)">(.*?)</td>', body, re.S))
        text = {k: unescape(re.sub(r"<[^>]+>", " ", v)).split() for k, v in cells.items()}
        badge = re.search(r'<span class="badge badge-kind badge-([\w-]+)"[^>]*>([^<]*)<', body)
        link = re.search(r'<a href="([^"]*)"', body)
        assert badge and link, body
        table[unescape(name)] = {
            "kind": kind,
            "badge": f"{badge.group(1)}:{badge.group(2)}",
            "upstream": unescape(host),
            "href": unescape(link.group(1)),
            **{k: " ".join(words) for k, words in text.items()},
        }
    return table


async def test_the_page_lists_python_and_http_endpoints(env: Env) -> None:
    html = await env.page("/ui/endpoints")
    found = rows(html)
    assert set(found) == {"/echo", "/sleep", "/fail", "/tuned", HOSTILE, "/thumbs", "/hidden", ODD}
    assert list(found) == sorted(found)
    echo, tuned, thumbs, hidden = (found[n] for n in ("/echo", "/tuned", "/thumbs", "/hidden"))
    assert (echo["kind"], echo["badge"], echo["upstream"], echo["host"]) == (
        "python",
        "python:python",
        "",
        "—",
    )
    assert echo["description"].startswith("Return the request unchanged")
    assert (thumbs["kind"], thumbs["badge"], thumbs["upstream"], thumbs["host"]) == (
        "http",
        "http:http",
        "127.0.0.1:9",
        "127.0.0.1:9",
    )
    assert thumbs["description"] == "POST 127.0.0.1:9 (sync)"
    assert (hidden["kind"], hidden["upstream"]) == ("http", "upstream.test:8443")
    assert found[ODD]["upstream"] == "odd.test"
    assert found[ODD]["description"] == "an odd name"
    # Defaults and limits, as declared; the node's max attempts where none is.
    assert tuned["description"] == "Resize an image."
    assert tuned["retryable"] == "yes retries errors (backoff 2 s)"
    assert (tuned["num max-attempts"], tuned["num timeout"]) == ("7", "45 s")
    assert tuned["limits"] == "2 per concurrency key, 5 in all"
    default = f"{env.service.default_max_attempts:,} node default"
    assert (echo["retryable"], echo["num max-attempts"]) == ("yes", default)
    assert (echo["num timeout"], echo["limits"]) == ("none", "none")
    assert thumbs["retryable"].startswith("yes retries errors")  # the file's default
    assert thumbs["num timeout"] == "30 s"
    assert hidden["retryable"] == "no never runs twice"
    assert hidden["num max-attempts"] == "1"
    assert (hidden["num timeout"], hidden["limits"]) == (
        "90 s (1 min 30 s)",
        "3 per concurrency key",
    )
    # No Kinetica upstream here: no note.
    assert "upstream-note" not in html
    assert "kinetica-upstream" not in html


async def test_no_secret_and_no_url_beyond_the_host_reaches_the_page(env: Env) -> None:
    html = await env.page("/ui/endpoints")
    assert rows(html)["/thumbs"]["upstream"] == "127.0.0.1:9"
    for secret in (SECRET, PASSWORD, "robot", "Bearer", "/private/path", "sig=", "/x"):
        assert secret not in html, secret
    # Nor the job list of an HTTP endpoint (its filter menu and its jobs).
    job_id = await env.create("/hidden", {"a": 1})
    listed = await env.page("/ui?endpoint=%2Fhidden")
    assert row_ids(listed) == [job_id]
    assert SECRET not in listed and PASSWORD not in listed
    detail = await env.page(f"/ui/jobs/{job_id}")
    assert SECRET not in detail and PASSWORD not in detail


async def test_a_kinetica_upstream_is_noted_with_its_host(upstream: Env) -> None:
    html = await upstream.page("/ui/endpoints")
    note = re.search(
        r'<p class="notice upstream-note" data-upstream="([^"]*)">(.*?)</p>', html, re.S
    )
    assert note, html
    assert note.group(1) == "127.0.0.1:9"
    assert '<span class="host">127.0.0.1:9</span>' in note.group(2)
    assert "badge-kinetica-upstream" in note.group(2)
    assert KINETICA_PASSWORD not in html and SECRET not in html and "admin" not in html
    # The declared endpoints are still listed, each with its own kind.
    found = rows(html)
    assert (found["/echo"]["kind"], found["/thumbs"]["kind"]) == ("python", "http")


async def test_each_name_links_to_the_jobs_of_that_endpoint(env: Env) -> None:
    thumbs = await env.create("/thumbs", {"n": 1})
    odd = await env.create(ODD, {"n": 2})
    echo = await env.create("/echo", {"n": 3})
    html = await env.page("/ui/endpoints")
    found = rows(html)
    assert found["/thumbs"]["href"] == "/ui?endpoint=%2Fthumbs"
    assert found[ODD]["href"] == "/ui?endpoint=%2Fodd+name%26x%3D1%3F%23"
    assert found["/echo"]["href"] == "/ui?endpoint=%2Fecho"
    for name, job_id in (("/thumbs", thumbs), (ODD, odd), ("/echo", echo)):
        listed = await env.page(found[name]["href"])
        assert row_ids(listed) == [job_id], name


async def test_names_and_descriptions_are_escaped(env: Env) -> None:
    html = await env.page("/ui/endpoints")
    assert "<b>x</b>" not in html and "<script>" not in html
    assert str(markupsafe.escape(HOSTILE)) in html
    assert "&lt;script&gt;alert(" in html
    assert rows(html)[HOSTILE]["href"] == "/ui?endpoint=%2F%3Cb%3Ex%3C%2Fb%3E%26%22%27"


async def test_every_page_links_to_the_endpoints_page(env: Env) -> None:
    job_id = await env.create("/echo", {})
    nav = '<a href="/ui/endpoints">Endpoints</a>'
    for path in ("/ui", f"/ui/jobs/{job_id}", "/ui/schedules", "/ui/limits", "/ui/endpoints"):
        html = await env.page(path)
        header = re.search(r'<header class="top">(.*?)</header>', html, re.S)
        assert header and nav in header.group(1), path
    assert nav in await env.page("/ui/nowhere", 404)


async def test_only_signed_in_users_see_the_page(db: Database, endpoints_file: str) -> None:
    auth = Authenticator(db)
    await auth.add_user("alice", "pw-alice")
    settings = {"endpoints_file": endpoints_file, "env": ENV}
    async with dashboard(db, run_jobs=False, settings=settings, authenticator=auth) as env:
        refused = await env.client.get("/ui/endpoints")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="jobstore"'
        assert "/thumbs" not in refused.text and "127.0.0.1" not in refused.text
        wrong = await env.client.get("/ui/endpoints", headers=basic("alice", "nope"))
        assert wrong.status_code == 401
        # A user who is not an admin sees the node's endpoints: they are nobody's.
        html = await env.page("/ui/endpoints", headers=basic("alice", "pw-alice"))
        assert rows(html)["/thumbs"]["upstream"] == "127.0.0.1:9"
        assert SECRET not in html
