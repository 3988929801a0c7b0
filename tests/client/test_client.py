"""jobstore.client against a real node: every method, sync and async (see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobstore.client import (
    ApiError,
    AsyncClient,
    BadRequest,
    CancelResult,
    Client,
    Conflict,
    Forbidden,
    Job,
    JobPage,
    JobRemoved,
    JobResult,
    NotFound,
    RemoteError,
    Unauthorized,
    Unreachable,
    WaitTimeout,
)
from tests.client.nodes import Connect, Node, StartNode
from tests.support.e2e import free_port, run_cli_ok

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


# -- create, get, wait, result ------------------------------------------------------------------


def test_create_wait_and_result(client: Any) -> None:
    job = client.create("/echo", {"hello": "world"}, tag="greeting-1")
    assert isinstance(job, Job)
    assert (job.tag, job.endpoint, job.new, job.finished) == ("greeting-1", "/echo", True, False)
    assert job.request is None, "create answers a summary"
    assert job.created_at is not None and job.created_at.tzinfo is not None

    done = client.wait(job, timeout=20)
    assert (done.id, done.status, done.finished, done.progress) == (job.id, "done", True, 100)
    assert done.response is not None and done.response.value == {"hello": "world"}
    assert done.request is not None and done.request.encoding == "json"
    assert done.raw["response"] == {"encoding": "json", "json": {"hello": "world"}}
    assert done.new is None, "only create says whether the job is new"

    for ref in (job.id, "greeting-1", job):
        assert client.get(ref).id == job.id
    result = client.result("greeting-1")
    assert isinstance(result, JobResult)
    assert (result.id, result.status, result.error) == (job.id, "done", None)
    assert result.result is not None and result.result.value == {"hello": "world"}


def test_failed_job_and_binary_payload(client: Any) -> None:
    failed = client.wait(client.create("/fail", {"message": "no luck"}), timeout=20)
    assert (failed.status, failed.error) == ("error", "no luck")
    outcome = client.result(failed)
    assert (outcome.status, outcome.error, outcome.result) == ("error", "no luck", None)

    raw = client.wait(client.create("/echo", payload_bytes=b"\x00\x01bytes"), timeout=20)
    assert raw.request is not None
    assert (raw.request_encoding, raw.request.data) == ("binary", b"\x00\x01bytes")
    given = base64.b64encode(b"more").decode()
    again = client.wait(client.create("/echo", payload_base64=given), timeout=20)
    assert again.request is not None and again.request.data == b"more"
    with pytest.raises(ValueError, match="give one payload"):
        client.create("/echo", {"a": 1}, payload_bytes=b"a")


def test_result_of_a_running_job_is_a_conflict(client: Any) -> None:
    job = client.create("/sleep", {"seconds": 30})
    with pytest.raises(Conflict) as refused:
        client.result(job)
    assert refused.value.slug == "job-not-finished"
    assert refused.value.problem["job_status"] in ("queued", "running")
    client.cancel(job)


def test_remove_on_complete_ends_in_job_removed(client: Any) -> None:
    job = client.create("/echo", {"n": 1}, remove_on_complete=True)
    assert job.remove_on_complete
    with pytest.raises(JobRemoved) as gone:
        client.wait(job, timeout=20)
    assert (gone.value.status, gone.value.job_status) == (410, "done")


# -- idempotency and problems -------------------------------------------------------------------


def test_same_tag_same_request_is_the_same_job(client: Any) -> None:
    first = client.create("/echo", {"order": 77}, tag="order-77")
    again = client.create("/echo", {"order": 77}, tag="order-77")
    assert (again.id, first.new, again.new) == (first.id, True, False)
    keyed = client.create("/echo", {"order": 77}, idempotency_key="order-77")
    assert (keyed.id, keyed.new) == (first.id, False)

    with pytest.raises(Conflict) as conflict:
        client.create("/echo", {"order": 78}, tag="order-77")
    problem = conflict.value
    assert isinstance(problem, ApiError) and isinstance(problem, RemoteError)
    assert (problem.status, problem.type) == (409, "/api/v1/problems/tag-conflict")
    assert problem.title == "Tag already in use"
    assert "order-77" in problem.detail and problem.problem["tag"] == "order-77"
    assert problem.instance == "/api/v1/jobs"


def test_unknown_job_is_not_found(client: Any) -> None:
    for call in (client.get, client.result, client.cancel, client.wait):
        with pytest.raises(NotFound) as missing:
            call(424242)
        error = missing.value
        assert (error.status, error.slug, error.title) == (404, "job-not-found", "Job not found")
        assert error.detail == "Job not found: no job with job_id 424242"
        assert str(error) == error.detail, "the title is not said twice"
    with pytest.raises(NotFound) as by_tag:
        client.get("no-such-tag")
    assert by_tag.value.problem["tag"] == "no-such-tag"


def test_bad_requests(client: Any) -> None:
    with pytest.raises(BadRequest) as unknown:
        client.create("/nowhere")
    assert unknown.value.slug == "unknown-endpoint"
    with pytest.raises(BadRequest) as bad_tag:
        client.create("/echo", tag="not a tag!")
    assert bad_tag.value.problem["errors"][0]["field"] == "tag"
    with pytest.raises(ValueError, match="time zone"):
        client.list(created_after=datetime(2025, 1, 1))


def test_unreachable_node_names_no_password(connect: Connect) -> None:
    client = connect(f"http://127.0.0.1:{free_port()}", user="ann", password="s3cret")
    with pytest.raises(Unreachable) as unreachable:
        client.get(1)
    assert "cannot reach http://127.0.0.1:" in str(unreachable.value)
    assert "s3cret" not in str(unreachable.value)


# -- wait and cancel ----------------------------------------------------------------------------


def test_wait_times_out_then_cancel(client: Any) -> None:
    job = client.create("/sleep", {"seconds": 30}, tag="long-nap")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        client.wait(job, timeout=0.5)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 5, waited
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.job.id == job.id and not timed_out.value.job.finished
    assert str(timed_out.value) == f"job {job.id} is still {timed_out.value.job.status} after 0.5s"

    cancelled = client.cancel("long-nap")
    assert isinstance(cancelled, CancelResult)
    assert cancelled.id == job.id and cancelled.outcome in ("cancelled", "cancel_requested")
    assert client.wait(job, timeout=20).status == "cancelled"
    with pytest.raises(Conflict) as finished:
        client.cancel(job)
    assert finished.value.slug == "job-finished"
    assert finished.value.problem["job_status"] == "cancelled"


def test_get_long_polls(client: Any) -> None:
    job = client.create("/sleep", {"seconds": 0.3})
    started = time.monotonic()
    seen = client.get(job, wait=10)
    assert seen.finished and seen.status == "done"
    assert time.monotonic() - started < 5, "answered when the job finished, not after the wait"


# -- listing ------------------------------------------------------------------------------------


def test_list_across_pages(client: Any) -> None:
    made = [client.create("/echo", {"n": n}, tag=f"page-{n}") for n in range(3)]
    for job in made:
        client.wait(job, timeout=20)
    newest_first = [job.id for job in reversed(made)]

    first = client.list(limit=2)
    assert isinstance(first, JobPage)
    assert [job.id for job in first.items] == newest_first[:2]
    assert first.next_before == newest_first[1]
    assert first.items[0].request is None, "a listing has summaries"
    second = client.list(limit=2, before=first.next_before)
    assert [job.id for job in second.items] == newest_first[2:]
    assert second.next_before is None and second.raw["next"] is None

    assert [job.id for job in client.iter_jobs(limit=2)] == newest_first
    assert [job.id for job in client.iter_jobs(limit=1, before=newest_first[0])] == (
        newest_first[1:]
    )

    assert [job.tag for job in client.list(tag="page-1").items] == ["page-1"]
    assert client.list(endpoint="/sleep").items == ()
    assert len(client.list(status="done").items) == 3
    assert len(client.list(status=["queued", "done"], endpoint="/echo").items) == 3
    assert client.list(status=("error", "cancelled")).items == ()
    now = datetime.now(UTC)
    assert len(client.list(created_after=now - timedelta(hours=1)).items) == 3
    assert client.list(created_before=now - timedelta(hours=1)).items == ()


# -- the node -----------------------------------------------------------------------------------


def test_stats_and_prune(client: Any) -> None:
    client.wait(client.create("/echo", {}), timeout=20)
    stats = client.stats()
    assert stats.counts["done"] == 1 and stats.capped_at > 0
    pruned = client.prune({"done": "0s"})
    assert (pruned.deleted, pruned.total, pruned.retention) == ({"done": 1}, 1, {"done": "0s"})
    assert client.list().items == ()


# -- authentication -----------------------------------------------------------------------------


def test_token_and_basic_auth(start_node: StartNode, connect: Connect, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    db = ("--database-url", database_url)
    run_cli_ok(["db", "upgrade", *db], tmp_path)
    run_cli_ok(["users", "add", "alice", "--no-password", *db], tmp_path)
    created = run_cli_ok(["tokens", "create", "--user", "alice", *db], tmp_path)
    token = created.stdout.strip().splitlines()[-1]
    bob = ["users", "add", "bob", "--admin", "--password-stdin", *db]
    run_cli_ok(bob, tmp_path, stdin="s3cret\n")
    node = start_node("--auth", "required", database_url=database_url)

    with pytest.raises(Unauthorized) as anonymous:
        connect(node.url).list()
    assert anonymous.value.status == 401 and anonymous.value.slug == "unauthorized"

    alice = connect(node.url, token=token)
    job = alice.wait(alice.create("/echo", {"who": "alice"}), timeout=20)
    assert (job.status, job.created_by) == ("done", "alice")
    with pytest.raises(Forbidden):
        alice.prune({"done": "0s"})

    bob = connect(node.url, user="bob", password="s3cret")
    assert [j.id for j in bob.list().items] == [job.id], "an administrator sees every job"
    with pytest.raises(Unauthorized) as wrong:
        connect(node.url, user="bob", password="nope").get(job.id)
    assert "nope" not in str(wrong.value) and token not in str(wrong.value)
    with pytest.raises(ValueError, match="not both"):
        connect(node.url, token=token, user="bob")


# -- async, natively ----------------------------------------------------------------------------


async def test_async_waits_run_together(node: Node) -> None:
    async with AsyncClient(node.url) as client:
        jobs = await asyncio.gather(*(client.create("/sleep", {"seconds": 1}) for _ in range(4)))
        done = await asyncio.gather(*(client.wait(job, timeout=20) for job in jobs))
        assert [job.status for job in done] == ["done"] * 4
        assert [job.id async for job in client.iter_jobs(limit=3)] == sorted(
            (job.id for job in jobs), reverse=True
        )


def test_both_clients_have_the_same_methods() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in {"close", "aclose"}
        }

    sync, asynchronous = public(Client), public(AsyncClient)
    assert sync.keys() == asynchronous.keys()
    for name, signature in sync.items():
        assert list(signature.parameters) == list(asynchronous[name].parameters), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)) or name == "iter_jobs"


def test_a_misspelt_filter_is_refused(client: Any) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument stauts"):
        client.list(stauts="done")
