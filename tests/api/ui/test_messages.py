"""The dashboard's search says why it shows nothing: no such tag or id, or the filters hide it."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from jobstore.cli.node import node_for_tests
from jobstore.core.jobs import JobService
from jobstore.domain.models import Encoding, Payload
from jobstore.store import Database

NOT_FOUND = (
    "No job has the tag or id '{}'; search takes an exact job tag "
    "(letters, digits, '_' and '-') or a job id."
)
HIDDEN = "A job has the tag or id '{}', but the status or endpoint chosen above hides it."


@dataclass
class Env:
    client: httpx.AsyncClient
    service: JobService

    async def create(self, tag: str) -> int:
        payload = Payload(Encoding.JSON, text="{}")
        result = await self.service.create_job("/echo", payload, {"job_tag": tag})
        return result.job_id

    async def search(self, query: str) -> tuple[list[int], list[str]]:
        """The job ids listed and the notices shown, for /ui?<query>."""
        response = await self.client.get(f"/ui?{query}")
        assert response.status_code == 200, response.text
        ids = [int(i) for i in re.findall(r'data-job-id="(\d+)"', response.text)]
        notices = re.findall(r'<p class="notice">(.*?)</p>', response.text, re.S)
        return ids, [html.unescape(n) for n in notices]


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    node = node_for_tests(db, node_id="ui-messages")
    app = node.app(run_background=False)  # jobs stay queued
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield Env(client, node.jobs)


async def test_a_search_that_finds_nothing_says_so(env: Env) -> None:
    await env.create("nightly-1")
    assert await env.search("q=xyz") == ([], [NOT_FOUND.format("xyz")])
    assert await env.search("q=nightly") == ([], [NOT_FOUND.format("nightly")])  # not a prefix
    assert await env.search("q=987654") == ([], [NOT_FOUND.format("987654")])
    assert await env.search("q=two+words") == ([], [NOT_FOUND.format("two words")])


async def test_a_search_hidden_by_the_filters_says_so(env: Env) -> None:
    job_id = await env.create("nightly-1")
    assert await env.search("q=nightly-1") == ([job_id], [])
    assert await env.search(f"q={job_id}") == ([job_id], [])
    assert await env.search("q=nightly-1&status=done") == ([], [HIDDEN.format("nightly-1")])
    assert await env.search(f"q={job_id}&endpoint=/sleep") == ([], [HIDDEN.format(job_id)])


async def test_the_notice_shows_a_short_escaped_search_term(env: Env) -> None:
    long_tag = "t" * 128
    assert await env.search(f"q={long_tag}") == ([], [NOT_FOUND.format("t" * 60 + "...")])
    response = await env.client.get("/ui", params={"q": "<b>x</b>"})
    assert "&lt;b&gt;x&lt;/b&gt;" in response.text and "<b>x</b>" not in response.text
