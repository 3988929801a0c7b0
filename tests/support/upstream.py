"""A real HTTP server for the upstream tests, and `upstream_node`, a node whose endpoints call it.

The server: it records every call and answers from a script.

    with UpstreamServer() as server:
        server.script("/thumbs", Reply(503), Reply(503), Reply(200, {"ok": True}))
        ... a node calls server.url("/thumbs") ...
        assert [c.headers["idempotency-key"] for c in server.calls("/thumbs")] == [...]

It listens on 127.0.0.1 on a free port, in threads of its own (so an async test can wait on it
without blocking the server). A path answers its scripted replies in turn, the last one again
and again; an unscripted path answers 404. `Reply.delay` holds the answer back (a slow or
hung upstream); `Reply.handler` computes it from the call instead.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from jobstore.cli.node import Node, node_for_tests
from jobstore.domain.clock import ManualClock
from jobstore.domain.models import Encoding, Job, JobState, Payload
from jobstore.store import Database


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = b""  # bytes as they are; str as UTF-8; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    handler: Callable[[Call], Reply] | None = None

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


class Arrived(Protocol):
    path: str


C = TypeVar("C", bound=Arrived)


class CallRecorder(Generic[C]):
    """The calls a test server had, in order, readable while it serves (from other threads).
    A server appends each call with `_record`, holding `_arrived`."""

    def __init__(self) -> None:
        self._calls: list[C] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def calls(self, path: str | None = None) -> list[C]:
        with self._lock:
            return [c for c in self._calls if path is None or c.path == path]

    def wait_for_calls(self, path: str, count: int, timeout: float = 15.0) -> list[C]:
        """Block until `path` had `count` calls; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(found := [c for c in self._calls if c.path == path]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{path} had {len(found)} calls, not {count}"
                self._arrived.wait(left)
            return found

    def _record(self, call: C) -> None:
        self._calls.append(call)
        self._arrived.notify_all()


class UpstreamServer(CallRecorder[Call]):
    def __init__(self, port: int = 0, *, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate, key) files: the server speaks HTTPS with them."""
        self._scripts: dict[str, list[Reply]] = {}
        super().__init__()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = list(replies)

    def __enter__(self) -> UpstreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_reply(self, call: Call) -> Reply:
        with self._arrived:
            self._record(call)
            script = self._scripts.get(call.path)
            if not script:
                return Reply(404, "no such path")
            reply = script.pop(0) if len(script) > 1 else script[0]
        return reply.handler(call) if reply.handler is not None else reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads the calls instead

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = Call(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                reply = server._next_reply(call)
                if reply.delay:
                    time.sleep(reply.delay)
                data, headers = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (a timeout, a cancel): nothing to answer

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _serve

        return Handler


def free_port() -> int:
    """A port nobody listens on now (for 'connection refused')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def upstream_node(
    db: Database,
    toml: str | None,
    tmp_path: Path,
    *,
    clock: ManualClock | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[Node]:
    """A node with the endpoints of `toml`, its upstream connections open; the tests drive
    its executor step by step (`node.executor.run_once()`)."""
    if toml is not None:
        path = tmp_path / "endpoints.toml"
        path.write_text(toml)
        settings["endpoints_file"] = str(path)
    node = node_for_tests(db, clock=clock, env=env, **settings)
    await node.upstreams.start()
    try:
        yield node
    finally:
        await node.executor.stop(wait_seconds=0)
        await node.upstreams.stop()


def entry(server_url: str, **keys: Any) -> str:
    """An endpoints file with the one endpoint /thumbs calling `server_url`; `keys` are more
    keys of its table (as JSON values, which TOML reads alike for these)."""
    lines = [f'url = "{server_url}"'] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return '[endpoints."/thumbs"]\n' + "\n".join(lines) + "\n"


async def create(node: Node, value: Any = None, **options: Any) -> int:
    """A /thumbs job with `value` (default {"image": 7}) as its JSON request; its id."""
    text = json.dumps({"image": 7} if value is None else value)
    created = await node.jobs.create_job("/thumbs", Payload(Encoding.JSON, text=text), options)
    return created.job_id


async def job(node: Node, job_id: int) -> Job:
    return await node.jobs.get_job(job_id=job_id)


async def run_due(node: Node, clock: ManualClock, job_id: int) -> list[int]:
    """Move the clock to the job's run_at, promote it, and run what is claimed."""
    waiting = await job(node, job_id)
    assert waiting.status is JobState.SCHEDULED and waiting.run_at is not None
    clock.advance((waiting.run_at - clock.now()).total_seconds())
    await node.executor.scheduler.run_once()
    return await node.executor.run_once()
