"""Compatibility: Kinetica's OFFICIAL Python client (`gpudb==7.2.3.13`, unchanged) against real
`jobstore serve` processes.

What the client needs from a server is in /work/shared/specs/kinetica-wire.md; the section
numbers below refer to it. Every test drives the real client; the jobs table is read directly
only to check what the client cannot see (who ran a job, how often, whether it ever started).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gpudb
import httpx
import pytest

from tests.support.avro import SLEEP_REQUEST, SLEEP_RESPONSE, avro_read
from tests.support.e2e import (
    MakeServer,
    Server,
    free_port,
    job_row,
    job_rows,
    query,
    run_cli_ok,
    server_factory,
    wait_for,
)
from tests.support.gpudb import (
    CLIENT_ENCODINGS,
    ECHO_RECORD,
    FAIL_REQUEST,
    REQUEST_ENCODINGS,
    add_user,
    client_noise,
    connect,
    create,
    create_token,
    job_payload,
    ok,
    response_bytes,
    wait_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

ONLY_POSTGRES = pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres)]
)

CANCEL_MESSAGE = "cancelled on request"
PING_TEXT = "Kinetica is running!"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite-backed server for the tests that do not need a fresh one."""
    workdir = tmp_path_factory.mktemp("gpudb-module")
    srv = Server(f"sqlite:///{workdir / 'jobstore.db'}", workdir, node_id="gpudb-module")
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()
        print(f"\n===== logs of {srv.node_id} (port {srv.port}) =====\n{srv.logs()}")


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    """A factory of (not started) servers on the test database; all killed at teardown, before
    the database is dropped (this fixture depends on `database_url`)."""
    with server_factory(database_url, tmp_path) as make:
        yield make


def _tag(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


# -- 1. the handshake makes no noise (§3.4) ------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"disable_auto_discovery": True}, {"disable_failover": True}],
    ids=["default", "no-discovery", "no-failover"],
)
@pytest.mark.parametrize("encoding", CLIENT_ENCODINGS)
def test_connect_logs_and_warns_nothing(
    server: Server, encoding: str, extra: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with client_noise() as noise:
        db = connect(server.url, encoding, **extra)
        status = ok(db.show_system_status())
    assert noise.describe() == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert db.encoding == encoding
    assert db.get_url() == server.url
    assert db.ha_ring_size == 1
    assert str(db.server_version) == "7.2.3.0"
    assert json.loads(status.status_map["system"])["status"] == "running"


def test_noise_capture_sees_the_clients_unpropagated_warnings(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: a real client warning is caught by `client_noise`,
    although the client's loggers do not propagate to the root logger."""
    monkeypatch.setattr(gpudb.gpudb, "HAVE_SNAPPY", False)
    with client_noise() as noise:
        db = connect(server.url, "SNAPPY")
    assert db.encoding == "BINARY"  # the client fell back, and said so
    assert len(noise.records) == 1, noise.describe()
    assert "python-snappy is not installed" in noise.records[0].getMessage()
    assert noise.records[0].levelno == logging.WARNING


# -- 2. 3 client encodings x 3 request encodings, for /echo, /sleep and /fail (§2, §4) ----------


ECHO_AVRO = {"text": "h\u00e9llo \u2713", "blob": b"\x00\x80\xff\x7f"}
ECHO_JSON = {"text": "h\u00e9llo \u2713", "list": [1, 2.5, None, True]}


@pytest.mark.parametrize("request_encoding", REQUEST_ENCODINGS)
@pytest.mark.parametrize("client_encoding", CLIENT_ENCODINGS)
def test_echo_sleep_fail_round_trip(
    server: Server, client_encoding: str, request_encoding: str
) -> None:
    db = connect(server.url, client_encoding)
    base = _tag(f"{client_encoding}-{request_encoding}")
    is_json = request_encoding == "json"
    echo_value = ECHO_JSON if is_json else ECHO_AVRO
    fail_message = f"boom {base} \u00fc"
    echo_id = create(db, "/echo", request_encoding, ECHO_RECORD, echo_value, tag=base + "-echo")
    sleep_id = create(
        db, "/sleep", request_encoding, SLEEP_REQUEST, {"seconds": 0.25}, tag=base + "-sleep"
    )
    fail_id = create(
        db, "/fail", request_encoding, FAIL_REQUEST, {"message": fail_message}, tag=base + "-fail"
    )
    assert len({echo_id, sleep_id, fail_id}) == 3

    family = "json" if is_json else "binary"
    empty_bytes = "" if client_encoding == "JSON" else b""

    # /echo: the same request, handed back unchanged.
    echo = wait_job(db, echo_id, logs=server.logs)
    assert (echo.endpoint, echo.job_status, echo.running, echo.successful) == (
        "/echo",
        "DONE",
        False,
        True,
    )
    assert echo.progress == 100
    assert echo.response_encoding == family
    assert echo.status_map == {}
    assert echo.info["job_tag"] == base + "-echo"
    assert echo.info["job_id"] == str(echo_id)
    if is_json:
        assert echo.job_response == empty_bytes
        assert json.loads(echo.job_response_str) == ECHO_JSON
        assert echo.job_response_str == job_payload(client_encoding, "json", None, ECHO_JSON)[1]
    else:
        assert echo.job_response_str == ""
        # snappy requests are answered uncompressed: plain Avro (§4.2)
        assert (
            avro_read(ECHO_RECORD, response_bytes(client_encoding, echo.job_response)) == ECHO_AVRO
        )

    # /sleep: decoded with sleep_response.
    slept = wait_job(db, sleep_id, logs=server.logs)
    assert (slept.endpoint, slept.job_status, slept.running, slept.successful) == (
        "/sleep",
        "DONE",
        False,
        True,
    )
    assert slept.progress == 100
    assert slept.response_encoding == family
    if is_json:
        assert slept.job_response == empty_bytes
        assert json.loads(slept.job_response_str) == {"slept": 0.25}
    else:
        assert slept.job_response_str == ""
        raw = response_bytes(client_encoding, slept.job_response)
        assert avro_read(SLEEP_RESPONSE, raw) == {"slept": 0.25}

    # /fail: an OK envelope carrying job_status ERROR and the message.
    failed = wait_job(db, fail_id, logs=server.logs)
    assert (failed.endpoint, failed.job_status, failed.running, failed.successful) == (
        "/fail",
        "ERROR",
        False,
        False,
    )
    assert failed.status_info["status"] == "OK"
    expected = fail_message  # /fail has an Avro schema: the message travels in every encoding
    assert failed.status_map == {"error_message": expected}
    assert failed.job_response == empty_bytes
    assert failed.job_response_str == ""


# -- 3. /admin/show/jobs (§4.3) ------------------------------------------------------------------

SHOW_JOBS_ARRAYS = (
    "job_id",
    "status",
    "endpoint_name",
    "time_received",
    "auth_id",
    "source_ip",
    "query_text",
    "user_data",
    "flags",
)


def _listing(resp: Any) -> dict[int, dict[str, Any]]:
    """The parallel arrays of admin_show_jobs as {job_id: {field: value}}; checks they are."""
    lengths = {name: len(resp[name]) for name in SHOW_JOBS_ARRAYS}
    assert len(set(lengths.values())) == 1, f"arrays are not parallel: {lengths}"
    assert resp.job_id == sorted(resp.job_id), "jobs are listed oldest first"
    assert resp.info["job_tag"] == ",".join(resp.user_data)
    return {
        job_id: {name: resp[name][i] for name in SHOW_JOBS_ARRAYS}
        for i, job_id in enumerate(resp.job_id)
    }


@pytest.mark.parametrize("client_encoding", CLIENT_ENCODINGS)
def test_admin_show_jobs_running_by_default_finished_on_request(
    server: Server, client_encoding: str
) -> None:
    db = connect(server.url, client_encoding)
    tag = _tag(f"show-{client_encoding}")
    before_ms = int(time.time() * 1000)
    done_id = create(db, "/echo", "json", None, {"n": 1}, tag=tag + "-done")
    running_id = create(db, "/sleep", "json", None, {"seconds": 20}, tag=tag + "-running")
    after_ms = int(time.time() * 1000)
    wait_job(db, done_id, logs=server.logs)
    wait_for(
        "the /sleep job to run",
        lambda: job_row(server.database_url, running_id)["status"] == "running",
        timeout=10,
        logs=server.logs,
    )
    try:
        running = _listing(ok(db.admin_show_jobs({})))
        assert done_id not in running
        assert all(job["status"] == "RUNNING" for job in running.values()), running
        assert all(job["flags"] in ("queued", "running") for job in running.values()), running
        entry = running[running_id]
        assert entry["status"] == "RUNNING"
        assert entry["flags"] == "running"
        assert entry["endpoint_name"] == "/sleep"
        assert entry["user_data"] == tag + "-running"
        assert entry["auth_id"] == ""
        assert entry["source_ip"] == "127.0.0.1"
        assert entry["query_text"] == ""
        assert before_ms - 1000 <= entry["time_received"] <= after_ms + 1000

        everything = _listing(ok(db.admin_show_jobs({"show_async_jobs": "true"})))
        assert {done_id, running_id} <= set(everything)
        assert everything[running_id] == entry
        finished = everything[done_id]
        assert (finished["status"], finished["flags"], finished["endpoint_name"]) == (
            "DONE",
            "done",
            "/echo",
        )
        assert finished["user_data"] == tag + "-done"
        # The client turns a bool option into 'true'/'false' (§4.1).
        assert set(_listing(ok(db.admin_show_jobs({"show_async_jobs": True})))) >= {done_id}
    finally:
        ok(db.admin_alter_jobs(running_id, "cancel", {}))
    assert wait_job(db, running_id, logs=server.logs).job_status == "CANCELLED"
    # Leave no active job behind for the next test's default listing.
    wait_for(
        "the cancelled job to stop",
        lambda: job_row(server.database_url, running_id)["status"] == "cancelled",
        timeout=5,
        logs=server.logs,
    )


# -- 5. unknown ids, lookups by tag, idempotent create (§2.4, §4.1, §4.2) ------------------------


@pytest.mark.parametrize("client_encoding", CLIENT_ENCODINGS)
def test_unknown_job_lookup_by_tag_and_idempotent_create(
    server: Server, client_encoding: str
) -> None:
    db = connect(server.url, client_encoding)

    missing = db.get_job(987654321, {})  # returns: an API error is not an exception
    assert not missing.is_ok()
    assert missing.get_error_msg() == "Job not found: no job with job_id 987654321"
    assert missing.status_info["data_type"] == "none"
    missing_tag = db.get_job(0, {"job_tag": "no-such-tag"})
    assert not missing_tag.is_ok()
    assert "no-such-tag" in missing_tag.get_error_msg()
    assert db.get_url() == server.url  # an API error is not a failover trigger

    tag = _tag(f"tag-{client_encoding}")
    job_id = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag=tag)
    by_tag = wait_job(db, 0, tag=tag, logs=server.logs)
    assert by_tag.info == {"job_tag": tag, "job_id": str(job_id)}
    assert avro_read(SLEEP_RESPONSE, response_bytes(client_encoding, by_tag.job_response)) == {
        "slept": 0.1
    }
    # The tag wins over a wrong id (tags are the cross-cluster key, §4.2).
    assert ok(db.get_job(987654321, {"job_tag": tag})).info["job_id"] == str(job_id)

    # The same create again (as the client re-sends it on 502/503/timeouts/failover).
    data, data_str = job_payload(client_encoding, "binary", SLEEP_REQUEST, {"seconds": 0.1})
    again = ok(db.create_job("/sleep", "binary", data, data_str, {"job_tag": tag}))
    assert again.job_id == job_id
    assert again.info["job_tag"] == tag
    rows = query(server.database_url, "SELECT job_id, attempt FROM jobs WHERE job_tag = $1", tag)
    assert rows == [{"job_id": job_id, "attempt": 1}]

    # The same tag with another request is refused, not silently merged.
    data, data_str = job_payload(client_encoding, "binary", SLEEP_REQUEST, {"seconds": 0.2})
    other = db.create_job("/sleep", "binary", data, data_str, {"job_tag": tag})
    assert not other.is_ok()
    assert tag in other.get_error_msg()


@pytest.mark.parametrize("client_encoding", CLIENT_ENCODINGS)
def test_path_prefix_and_bad_requests_are_api_errors(server: Server, client_encoding: str) -> None:
    """A URL with a path is served (§1); bad requests come back as ERROR envelopes the call
    returns, never as exceptions or failover triggers (§2.4)."""
    with client_noise() as noise:
        db = connect(server.url + "/gpudb-0", client_encoding)
    assert noise.describe() == []
    assert db.get_url() == server.url + "/gpudb-0"
    tag = _tag(f"prefix-{client_encoding}")
    job_id = create(db, "/sleep", "json", None, {"seconds": 0.1}, tag=tag)
    assert wait_job(db, job_id, logs=server.logs).job_status == "DONE"

    empty = "" if client_encoding == "JSON" else b""
    errors = {
        "unknown endpoint '/nope'": db.create_job("/nope", "json", empty, "{}", {}),
        "unknown request_encoding 'xml'": db.create_job("/sleep", "xml", empty, "{}", {}),
        "request does not match schema 'sleep_request'": db.create_job(
            "/sleep", "json", empty, '{"seconds": "x"}', {}
        ),
        "invalid job_tag 'bad tag!'": db.create_job(
            "/sleep", "json", empty, '{"seconds": 0}', {"job_tag": "bad tag!"}
        ),
        "unsupported action 'pause'": db.admin_alter_jobs(job_id, "pause", {}),
    }
    for expected, resp in errors.items():
        assert not resp.is_ok(), expected
        assert expected in resp.get_error_msg()
        assert resp.status_info["data_type"] == "none"
    assert db.get_url() == server.url + "/gpudb-0"
    assert db.get_num_cluster_switches() == 0


# -- 4. /admin/alter/jobs cancel: queued, running, unknown (§4.4) --------------------------------


def test_cancel_queued_running_and_unknown_jobs(database_url: str, servers: MakeServer) -> None:
    srv = servers(node_id="node-c", extra_args=["--concurrency", "1"]).start()
    db = connect(srv.url, "BINARY")
    busy = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 30.0}, tag="busy")
    wait_for(
        "the 30 s job to hold the only slot",
        lambda: (
            (r := job_row(database_url, busy))["status"] == "running" and r["owner"] == "node-c"
        ),
        timeout=10,
        logs=srv.logs,
    )
    queued = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag="queued")
    assert job_row(database_url, queued)["status"] == "queued"
    assert ok(db.get_job(queued, {})).job_status == "RUNNING"  # Kinetica has no "queued"

    # A queued job: cancelled at once, and never run.
    resp = ok(db.admin_alter_jobs(queued, "cancel", {}))
    assert (resp.job_ids, resp.action, resp.status) == ([queued], "cancel", ["cancelled"])
    got = ok(db.get_job(queued, {}))
    assert (got.job_status, got.running, got.successful) == ("CANCELLED", False, False)
    assert got.status_map == {"error_message": CANCEL_MESSAGE}

    # A running job: reads CANCELLED at once, and the row ends cancelled soon.
    cancelled_at = time.monotonic()
    resp = ok(db.admin_alter_jobs(busy, "cancel", {}))
    assert (resp.job_ids, resp.status) == ([busy], ["cancelled"])
    got = ok(db.get_job(busy, {}))
    assert (got.job_status, got.running, got.successful) == ("CANCELLED", False, False)
    wait_for(
        "the running job's row to end cancelled",
        lambda: job_row(database_url, busy)["status"] == "cancelled",
        timeout=5,
        logs=srv.logs,
    )
    stopped_after = time.monotonic() - cancelled_at
    assert stopped_after < 5
    got = ok(db.get_job(busy, {}))
    assert got.job_status == "CANCELLED"
    assert got.status_map == {"error_message": CANCEL_MESSAGE}
    assert got.progress < 100

    # The slot is free again: a new job runs, and the cancelled queued one still never did.
    after = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag="after")
    assert wait_job(db, after, logs=srv.logs).job_status == "DONE"
    row = job_row(database_url, queued)
    assert (row["status"], row["attempt"], row["owner"], row["progress"]) == (
        "cancelled",
        0,
        None,
        0,
    )
    assert ok(db.get_job(queued, {})).job_status == "CANCELLED"

    # Unknown and finished ids, in one call.
    resp = ok(db.admin_alter_jobs([987654321, after], "cancel", {}))
    assert (resp.job_ids, resp.status) == ([987654321, after], ["not_found", "already_done"])
    assert ok(db.get_job(after, {})).job_status == "DONE"
    print(f"\nrunning /sleep 30 stopped {stopped_after:.2f}s after the cancel")


# -- 6. authentication (§5) -----------------------------------------------------------------------


def test_auth_basic_bearer_rejections_and_visibility(
    database_url: str, servers: MakeServer, tmp_path: Path
) -> None:
    assert add_user(database_url, tmp_path, "alice", "alice-pw") == "added user alice"
    assert add_user(database_url, tmp_path, "root", "root-pw", admin=True) == (
        "added user root (admin)"
    )
    token = create_token(database_url, tmp_path, "alice")
    assert len(token) >= 20 and " " not in token
    srv = servers(Server, node_id="node-auth", extra_args=["--auth", "required"]).start()

    # The ping needs no credentials (the failback poller sends it, §1).
    ping = httpx.get(srv.url + "/", headers={"Accept": "application/json"}, timeout=5)
    assert (ping.status_code, ping.text) == (200, PING_TEXT)

    # Basic.
    alice = connect(srv.url, "JSON", username="alice", password="alice-pw")
    alice_job = create(alice, "/sleep", "json", None, {"seconds": 0.1}, tag="alice-basic")
    assert wait_job(alice, alice_job, logs=srv.logs).job_status == "DONE"

    # Bearer (it wins over a wrong password, §5).
    bearer = connect(srv.url, "BINARY", oauth_token=token, username="alice", password="wrong")
    token_job = create(bearer, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag="alice-tok")
    done = wait_job(bearer, token_job, logs=srv.logs)
    assert avro_read(SLEEP_RESPONSE, done.job_response) == {"slept": 0.1}

    # Rejected: wrong password, unknown user, bad token, no credentials (401, §5).
    for options in (
        {"username": "alice", "password": "nope"},
        {"username": "mallory", "password": "alice-pw"},
        {"oauth_token": token + "x"},
        {},
    ):
        with pytest.raises(gpudb.GPUdbUnauthorizedAccessException) as raised:
            connect(srv.url, "BINARY", **options)
        assert "Unauthorized access" in str(raised.value), options
    # Without discovery the constructor wraps it (§5).
    with pytest.raises(gpudb.GPUdbException) as wrapped:
        connect(srv.url, "SNAPPY", disable_auto_discovery=True)
    assert "Failed to get database version from the server" in str(wrapped.value)
    assert "Unauthorized access" in str(wrapped.value)
    # Visibility: alice sees her own jobs only; the admin sees everyone's.
    root = connect(srv.url, "SNAPPY", username="root", password="root-pw")
    root_job = create(root, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag="root-job")
    assert wait_job(root, root_job, logs=srv.logs).job_status == "DONE"

    mine = _listing(ok(alice.admin_show_jobs({"show_async_jobs": "true"})))
    assert sorted(mine) == [alice_job, token_job]
    assert {job["auth_id"] for job in mine.values()} == {"alice"}
    everyone = _listing(ok(root.admin_show_jobs({"show_async_jobs": "true"})))
    assert sorted(everyone) == [alice_job, token_job, root_job]
    assert [everyone[i]["auth_id"] for i in sorted(everyone)] == ["alice", "alice", "root"]

    hidden = alice.get_job(root_job, {})
    assert not hidden.is_ok()
    assert "not found" in hidden.get_error_msg().lower()
    assert ok(root.get_job(alice_job, {})).job_status == "DONE"
    resp = ok(alice.admin_alter_jobs(root_job, "cancel", {}))
    assert resp.status == ["not_found"]

    # Refused at the call: the token of a connected client is revoked (tokens are not cached).
    assert ok(bearer.get_job(token_job, {})).job_status == "DONE"
    run_cli_ok(["tokens", "revoke", token, "--database-url", database_url], tmp_path)
    with pytest.raises(gpudb.GPUdbUnauthorizedAccessException) as at_call:
        bearer.get_job(token_job, {})
    assert "Unauthorized access" in str(at_call.value)
    assert bearer.get_url() == srv.url  # a 401 is no failover trigger


# -- 7 and 8. two nodes on one PostgreSQL: the handshake and failover (§3.3, §6) ----------------


def _ha_pair(
    make: MakeServer,
    *,
    b_args: tuple[str, ...] = (),
    before_a: Callable[[Server], None] | None = None,
) -> tuple[Server, Server, str]:
    """Node B (started first, then `before_a(B)`), then node A; each names the other in
    --ha-peers. Returns (A, B, B's URL as clients must write it: `localhost`, a host name
    distinct from A's `127.0.0.1`, or the client sees one cluster, §6.1)."""
    port_a, port_b = free_port(), free_port()
    b_url = f"http://localhost:{port_b}"
    node_b = make(
        node_id="node-b",
        port=port_b,
        lease_seconds=2,
        extra_args=["--ha-peers", f"http://127.0.0.1:{port_a}", *b_args],
    ).start()
    if before_a is not None:
        before_a(node_b)
    node_a = make(
        node_id="node-a", port=port_a, lease_seconds=2, extra_args=["--ha-peers", b_url]
    ).start()
    return node_a, node_b, b_url


@ONLY_POSTGRES
def test_system_properties_and_ring_discovery(database_url: str, servers: MakeServer) -> None:
    node_a, _node_b, b_url = _ha_pair(servers)
    with client_noise() as noise:
        db = connect(node_a.url, "BINARY")  # one URL: B is found through the properties
    assert noise.describe() == []
    assert db.ha_ring_size == 2
    assert [str(u) for u in db.get_head_node_urls()] == [node_a.url, b_url]
    assert db.get_url() == node_a.url

    props = ok(db.show_system_properties()).property_map
    version = props["version.gpudb_core_version"].split(".")
    assert len(version) == 4 and all(part.isdigit() for part in version), version
    assert version[:2] == ["7", "2"]
    assert props["conf.number_of_hosts"] == "1"
    assert props["conf.host0_public_urls"] == node_a.url
    assert props["conf.enable_ha"] == "TRUE"
    assert props["conf.ha_ring_head_nodes_full"] == b_url
    assert "conf.worker_http_server_urls" not in props

    props_b = ok(connect(b_url, "JSON").show_system_properties()).property_map
    assert props_b["conf.host0_public_urls"] == b_url
    assert props_b["conf.ha_ring_head_nodes_full"] == node_a.url


def test_system_properties_without_peers(server: Server) -> None:
    db = connect(server.url, "JSON")
    props = ok(db.show_system_properties()).property_map
    assert props["version.gpudb_core_version"] == "7.2.3.0"
    assert props["conf.host0_public_urls"] == server.url
    assert props["conf.enable_ha"] == "FALSE"
    assert "conf.ha_ring_head_nodes_full" not in props
    assert db.ha_ring_size == 1


@ONLY_POSTGRES
def test_failover_to_second_node_finishes_the_job(database_url: str, servers: MakeServer) -> None:
    # B runs one job at a time and is kept busy (before A starts), so the job created through
    # A is run by A: with both free, B's executor could win the claim (both wake on a new row).
    blockers: list[int] = []

    def occupy(node_b: Server) -> None:
        blockers.append(node_b.create_job("/sleep", {"seconds": 60}, tag="b-blocker"))
        wait_for(
            "B to be busy",
            lambda: (
                (r := job_row(database_url, blockers[0]))["owner"] == "node-b"
                and r["status"] == "running"
            ),
            timeout=10,
            logs=node_b.logs,
        )

    node_a, node_b, b_url = _ha_pair(servers, b_args=("--concurrency", "1"), before_a=occupy)
    blocker = blockers[0]

    db = connect([node_a.url, b_url], "BINARY")
    assert db.ha_ring_size == 2
    assert db.get_url() == node_a.url
    tag = "ha-sleep-1"
    job_id = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 3.0}, tag=tag)
    wait_for(
        "the job to run on A",
        lambda: (
            (r := job_row(database_url, job_id))["status"] == "running"
            and r["owner"] == "node-a"
            and r["progress"] > 0
        ),
        timeout=10,
        logs=node_a.logs,
    )

    node_a.kill()
    killed_at = time.monotonic()
    first = ok(db.get_job(job_id, {"job_tag": tag}))  # fails over to B and re-sends
    first_after = time.monotonic() - killed_at
    assert db.get_url() == b_url
    assert db.get_num_cluster_switches() == 1
    assert first.job_status == "RUNNING"
    assert first.info == {"job_tag": tag, "job_id": str(job_id)}
    # Free B's only slot, through the client (now talking to B).
    assert ok(db.admin_alter_jobs(blocker, "cancel", {})).status == ["cancelled"]

    done = wait_job(db, job_id, tag=tag, timeout=20, logs=node_b.logs)
    done_after = time.monotonic() - killed_at
    assert (done.job_status, done.successful, done.progress) == ("DONE", True, 100)
    assert avro_read(SLEEP_RESPONSE, done.job_response) == {"slept": 3.0}
    assert db.get_url() == b_url

    # New work after the failover goes to B, and runs there.
    later = create(db, "/sleep", "binary", SLEEP_REQUEST, {"seconds": 0.1}, tag="ha-sleep-2")
    assert wait_job(db, later, tag="ha-sleep-2", logs=node_b.logs).job_status == "DONE"
    assert job_row(database_url, later)["attempt"] == 1
    assert db.get_num_cluster_switches() == 1

    rows = query(
        database_url, "SELECT job_id, status, attempt, owner FROM jobs WHERE job_tag = $1", tag
    )
    assert len(rows) == 1, rows
    assert (rows[0]["job_id"], rows[0]["status"], rows[0]["attempt"]) == (job_id, "done", 2)
    print(
        f"\nfailover: first get_job answered by B {first_after:.2f}s after SIGKILL of A; "
        f"client saw DONE {done_after:.2f}s after the kill (lease 2 s, job 3 s)"
    )


# -- 9. the engine's options: a delayed job, a cancelled one, a refused one ----------------------


def _moment(value: Any) -> datetime:
    """A time column as an aware datetime (SQLite keeps naive UTC text)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime), value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def test_delayed_job_reads_running_until_due_cancel_and_bad_options(
    database_url: str, servers: MakeServer
) -> None:
    srv = servers(node_id="node-engine").start()
    clients = {encoding: connect(srv.url, encoding) for encoding in CLIENT_ENCODINGS}

    # delay_seconds 1, priority 5: RUNNING (not finished) while it waits, listed as scheduled.
    ids: dict[str, int] = {}
    for encoding, db in clients.items():
        data, data_str = job_payload(encoding, "binary", SLEEP_REQUEST, {"seconds": 0.1})
        options = {"job_tag": f"delayed-{encoding}", "delay_seconds": "1", "priority": "5"}
        job_id = int(ok(db.create_job("/sleep", "binary", data, data_str, options)).job_id)
        ids[encoding] = job_id
        early = ok(db.get_job(job_id, {}))
        listed = _listing(ok(db.admin_show_jobs({})))[job_id]
        # Still scheduled after both calls, so both saw it scheduled.
        sql = "SELECT status, priority FROM jobs WHERE job_id = $1"
        assert query(database_url, sql, job_id) == [{"status": "scheduled", "priority": 5}]
        assert (early.job_status, early.running, early.successful) == ("RUNNING", True, False)
        assert (early.progress, early.status_map) == (0, {})
        assert (listed["status"], listed["flags"]) == ("RUNNING", "scheduled")
    for encoding, db in clients.items():
        done = wait_job(db, ids[encoding], logs=srv.logs)
        assert (done.job_status, done.running, done.successful) == ("DONE", False, True)
        raw = response_bytes(encoding, done.job_response)
        assert avro_read(SLEEP_RESPONSE, raw) == {"slept": 0.1}
        [row] = query(
            database_url,
            "SELECT created_at, run_at, started_at, attempt FROM jobs WHERE job_id = $1",
            ids[encoding],
        )
        created, run_at, started = (_moment(row[k]) for k in ("created_at", "run_at", "started_at"))
        assert run_at - created == timedelta(seconds=1)
        assert started >= run_at, row  # not started before it was due
        assert row["attempt"] == 1

    # Cancel a scheduled job: at once, and it never runs.
    db = clients["BINARY"]
    data, data_str = job_payload("BINARY", "binary", SLEEP_REQUEST, {"seconds": 0.1})
    options = {"job_tag": "delayed-cancel", "delay_seconds": "60"}
    waiting = int(ok(db.create_job("/sleep", "binary", data, data_str, options)).job_id)
    assert ok(db.get_job(waiting, {})).job_status == "RUNNING"
    resp = ok(db.admin_alter_jobs(waiting, "cancel", {}))
    assert (resp.job_ids, resp.status) == ([waiting], ["cancelled"])
    got = ok(db.get_job(waiting, {}))
    assert (got.job_status, got.running, got.successful) == ("CANCELLED", False, False)
    assert got.status_map == {"error_message": CANCEL_MESSAGE}
    row = job_row(database_url, waiting)
    assert (row["status"], row["attempt"], row["owner"]) == ("cancelled", 0, None)

    # A bad option is an API error naming it: returned, not raised, and no failover.
    for encoding, db in clients.items():
        empty = "" if encoding == "JSON" else b""
        bad = db.create_job("/sleep", "json", empty, '{"seconds": 0}', {"priority": "x"})
        assert not bad.is_ok()
        assert bad.get_error_msg() == (
            "option 'priority' must be an integer from -1000 to 1000, got 'x'"
        )
        assert bad.status_info["data_type"] == "none"
        assert db.get_url() == srv.url and db.get_num_cluster_switches() == 0
    assert len(job_rows(database_url)) == len(ids) + 1
