"""Slow and hostile clients do not stop a node from answering (real processes, SQLite, PostgreSQL).

A real `jobstore serve` is held by hundreds of connections that never finish a request:
slow-loris clients that send a request line or headers a byte every couple of seconds, clients
that send half a body (or an unfinished chunked one) and stop, clients that connect and send
nothing. While they are held, `/healthz` and a create plus a status read, each over a fresh
connection, must answer within BOUND seconds, again and again. Afterwards the node still runs
jobs, its open files are back down (nothing leaked), and its log has no traceback.

uvicorn has no timeout for a request that is still arriving (its `timeout_keep_alive` only runs
between requests on a kept-alive connection), so the node holds such connections as long as the
clients do; what it must not do is stop serving everyone else. Each one costs the node a file
descriptor, so this test raises its own soft `ulimit -n` (the node inherits it) and skips where
the hard limit is too low. docs/operations.md, "Slow and hostile clients", says what to put in
front of a node.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import Server, server_factory, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SLOW_LORIS = 500
HALF_BODIES = 150
SILENT = 150
HOSTILE = SLOW_LORIS + HALF_BODIES + SILENT
BOUND = 2.0  # seconds: the most any probe may take while the node is held
PROBE_SECONDS = 12.0
TRICKLE_SECONDS = 2.0  # a slow-loris client sends one more byte this often

JSON_HEADERS = b"Host: node\r\nContent-Type: application/json\r\n"
# Requests that never end: each slow-loris client then trickles b"a" into the unfinished part
# (the path, a header's value), so it never completes.
SLOW_STARTS = [
    b"GET /",
    b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: ",
    b"POST /api/v1/jobs HTTP/1.1\r\n" + JSON_HEADERS + b"Content-Length: 100\r\nX-Slow: ",
]
# Requests whose headers are complete and whose body stops halfway: the app is waiting for it.
HALF_BODY_REQUESTS = [
    b"POST /api/v1/jobs HTTP/1.1\r\n"
    + JSON_HEADERS
    + b"Content-Length: 1000\r\n\r\n"
    + b'{"endpoint": "/echo", "payload": "'
    + b"a" * 400,
    b"POST /create/job HTTP/1.1\r\n"
    + JSON_HEADERS
    + b"Content-Length: 1000\r\n\r\n"
    + b'{"endpoint": "/echo", "request_encoding": "json", "data_str": "',
    b"POST /api/v1/jobs HTTP/1.1\r\n"
    + JSON_HEADERS
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b'10\r\n{"endpoint": "/e\r\n',
]


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with server_factory(database_url, tmp_path) as make:
        yield make(node_id="held")


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for the hostile sockets in this process and in the node (which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * HOSTILE + 256
    if soft >= need:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"ulimit -n: the hard limit {hard} is below the {need} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Hostile:
    """Connections to a node that never finish a request; a thread keeps the slow ones going."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.slow: list[socket.socket] = []
        self.others: list[socket.socket] = []
        self.refused = 0  # trickles the node no longer took: it closed that connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-loris", daemon=True)

    def _connect(self, first: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if first:
            sock.sendall(first)
        return sock

    def open(self) -> None:
        for i in range(SLOW_LORIS):
            self.slow.append(self._connect(SLOW_STARTS[i % len(SLOW_STARTS)]))
        for i in range(HALF_BODIES):
            self.others.append(self._connect(HALF_BODY_REQUESTS[i % len(HALF_BODY_REQUESTS)]))
        for _ in range(SILENT):
            self.others.append(self._connect(b""))
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_SECONDS):
            for sock in list(self.slow):
                try:
                    sock.send(b"a")
                except OSError:
                    self.slow.remove(sock)
                    self.refused += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for sock in [*self.slow, *self.others]:
            with contextlib.suppress(OSError):
                sock.close()
        self.slow.clear()
        self.others.clear()


def _open_files(server: Server) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def _probe(url: str) -> tuple[float, str]:
    """/healthz, then a create and its status read, each on a fresh connection; returns the
    slowest of the three and "" or what went wrong."""
    slowest = 0.0

    def timed(request: httpx.Request) -> httpx.Response:
        nonlocal slowest
        began = time.monotonic()
        with httpx.Client(timeout=BOUND) as client:  # a new connection each time
            response = client.send(request)
        slowest = max(slowest, time.monotonic() - began)
        return response

    try:
        health = timed(httpx.Request("GET", f"{url}/healthz"))
        if health.status_code != 200:
            return slowest, f"/healthz answered {health.status_code}"
        body = {"endpoint": "/echo", "payload": {"probe": True}}
        created = timed(httpx.Request("POST", f"{url}/api/v1/jobs", json=body))
        if created.status_code != 201:
            return slowest, f"create answered {created.status_code}: {created.text}"
        read = timed(httpx.Request("GET", url + created.headers["location"]))
        if read.status_code != 200:
            return slowest, f"status read answered {read.status_code}: {read.text}"
    except httpx.HTTPError as exc:
        return slowest, f"{type(exc).__name__}: {exc}"
    return slowest, ""


@pytest.mark.usefixtures("descriptors")
def test_held_connections_do_not_stop_the_node_answering(node: Server) -> None:
    node.start()
    assert _probe(node.url)[1] == ""
    baseline = _open_files(node)
    hostile = Hostile(node.port)
    try:
        hostile.open()
        # The node took them all (they are not merely waiting in the kernel's backlog).
        wait_for(
            f"the node to hold {HOSTILE} connections",
            lambda: _open_files(node) >= baseline + HOSTILE - 10,
            timeout=15,
            logs=node.logs,
        )
        probes: list[tuple[float, str]] = []
        deadline = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < deadline:
            probes.append(_probe(node.url))
            time.sleep(0.2)
        held = _open_files(node) - baseline
        still_slow = len(hostile.slow)
    finally:
        hostile.close()
    slowest = max(seconds for seconds, _ in probes)
    print(
        f"{len(probes)} probes while {held} connections were held ({still_slow} slow-loris "
        f"still trickling, {hostile.refused} closed by the node); slowest answer {slowest:.3f}s"
    )
    failed = [(round(seconds, 3), error) for seconds, error in probes if error or seconds > BOUND]
    assert not failed, f"{len(failed)} of {len(probes)} probes failed or were slow: {failed[:5]}"
    assert len(probes) >= 10

    # Once the clients are gone, the node lets go of their connections and carries on.
    wait_for(
        "the node to close the hostile connections",
        lambda: _open_files(node) <= baseline + 10,
        timeout=15,
        logs=node.logs,
    )
    assert _probe(node.url)[1] == ""

    def jobs() -> list[dict[str, object]]:
        listing = httpx.get(f"{node.url}/api/v1/jobs", params={"limit": 500}, timeout=10)
        items: list[dict[str, object]] = listing.json()["items"]
        return items

    assert len(jobs()) == len(probes) + 2  # the probes' creates, no half-sent one
    wait_for(
        "every probe's job to run",
        lambda: all(job["status"] == "done" for job in jobs()),
        timeout=30,
        logs=node.logs,
    )
    assert node.running
    assert "Traceback" not in node.logs(), node.logs()
    assert node.terminate() == 0


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_a_client_gone_mid_body_is_not_an_internal_error(database_url: str, tmp_path: Path) -> None:
    """Half a body, then the client hangs up: the facades waiting for the rest hear of it
    (logged at INFO), with no traceback and no "internal error"."""
    with server_factory(database_url, tmp_path) as make:
        node = make(node_id="gone", log_level="info").start()
        for request in HALF_BODY_REQUESTS:
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
                sock.sendall(request)
                time.sleep(0.2)  # the app is now waiting for the rest of the body
        assert _probe(node.url)[1] == ""  # and it is still fine
        noticed = ("POST /api/v1/jobs: the client disconnected", "POST /create/job: the client")
        wait_for(
            "the node to notice the clients gone",
            lambda: all(line in node.logs() for line in noticed),
            timeout=5,
            logs=node.logs,
        )
        logs = node.logs()
    assert "Traceback" not in logs and "internal error" not in logs, logs
