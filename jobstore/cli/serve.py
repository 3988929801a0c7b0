"""`jobstore serve` and `jobstore worker`: build a node, bind its port, run it until a signal.

SIGINT and SIGTERM start a soft stop (running jobs get --shutdown-seconds to finish, the rest
go back to the queue); signals are handled here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from jobstore import __version__
from jobstore.cli.node import build_node
from jobstore.cli.processes import supervise
from jobstore.cli.settings import Settings
from jobstore.domain.errors import CannotListen

log = logging.getLogger("jobstore")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: serve() installs ours, so a SIGTERM ends in
    a soft stop and exit code 0 (uvicorn re-raises the signal it caught once it is done)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()


_LISTEN_HINTS = {
    errno.EADDRINUSE: "pick another --port, or stop what listens there",
    errno.EADDRNOTAVAIL: "that address is not on this machine; check --host",
    errno.EACCES: "ports below 1024 need privileges; pick another --port",
}


def _listen_sockets(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Bind --host:--port before anything starts, as uvicorn would (SO_REUSEADDR, one socket
    per address of the host); uvicorn listens on them once the app is up. `reuse_port`: the
    processes of one node each bind the port, and the kernel spreads connections over them."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror}; check --host") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        hint = _LISTEN_HINTS.get(exc.errno or 0, "check --host and --port")
        raise CannotListen(f"cannot listen on {where}: {reason}; {hint}") from exc
    return sockets


def _settle_memory() -> None:
    """Move what start-up allocated (modules, schemas, the app) out of the garbage collector's
    sight: a full collection then scans only what requests allocate, and no longer pauses a
    busy node for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def _on_signal(sig: signal.Signals, stop: Callable[[], None]) -> None:
    """SIGINT/SIGTERM: say so, then begin the soft stop (a second signal changes nothing)."""
    log.info("%s received: stopping (running jobs may finish first)", sig.name)
    stop()


async def serve(
    settings: Settings, *, reuse_port: bool = False, on_ready: Callable[[], None] | None = None
) -> int:
    settings.check_bind()
    node = build_node(settings, command="serve")
    sockets: list[socket.socket] = []
    try:
        sockets = _listen_sockets(settings.host, settings.port, reuse_port=reuse_port)
        await node.prepare()
        _settle_memory()
        executor = node.executor
        json_logs = settings.log_format == "json"
        server = _Server(
            uvicorn.Config(
                node.app(),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                # JSON: our handler formats uvicorn's records too, access lines included.
                log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
                access_log=json_logs,
                lifespan="on",
                # Our lifespan does the soft stop; uvicorn must not cut it short.
                timeout_graceful_shutdown=None,
            ),
            on_ready,
        )
        log.info(
            "jobstore %s on http://%s:%d, auth %s, node %s, database %s, endpoints %s",
            __version__,
            settings.host,
            settings.port,
            settings.auth,
            node.node_id,
            node.db.shown_url,
            ", ".join(node.registry.names()),
        )

        async def stop_server_if_executor_dies() -> None:
            await executor.stopped.wait()
            if executor.failure is not None:
                server.should_exit = True

        watcher = asyncio.create_task(stop_server_if_executor_dies())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(
                sig, _on_signal, sig, lambda: setattr(server, "should_exit", True)
            )
        try:
            await server.serve(sockets=sockets)
        except SystemExit:  # uvicorn's exit when the app's start-up failed (it logged why)
            return 1
        finally:
            watcher.cancel()
        return 1 if executor.failure is not None or not server.started else 0
    finally:
        for sock in sockets:
            sock.close()
        await node.close()


async def worker(settings: Settings, *, on_ready: Callable[[], None] | None = None) -> int:
    node = build_node(settings, command="worker")
    try:
        await node.prepare()
        _settle_memory()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, sig, stop.set)
        await node.start()
        log.info(
            "jobstore %s worker, node %s, database %s, endpoints %s",
            __version__,
            node.node_id,
            node.db.shown_url,
            ", ".join(node.registry.names()),
        )
        if on_ready is not None:
            on_ready()
        stopped = asyncio.create_task(node.executor.stopped.wait())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        await node.stop()
        return 1 if node.executor.failure is not None else 0
    finally:
        await node.close()


def _run_fast(main: Coroutine[Any, Any, int]) -> int:
    """Run a node on uvloop where it is installed (it is a dependency off Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


def run_node(
    command: str,
    settings: Settings,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run `serve` or `worker` until it stops; its exit status. With --processes above 1,
    this process supervises that many (cli/processes.py), which call this with `reuse_port`
    and `on_ready` (called once the node serves)."""
    if settings.processes > 1:
        prepare = functools.partial(_prepare_once, command)
        return supervise(command, settings, prepare=prepare, run=run_node)
    if command == "serve":
        return _run_fast(serve(settings, reuse_port=reuse_port, on_ready=on_ready))
    return _run_fast(worker(settings, on_ready=on_ready))


def _prepare_once(command: str, settings: Settings) -> None:
    """What the processes of one node must not each do: check the port is free (they bind it
    with SO_REUSEPORT, which would not notice another node on it), load the endpoints (one
    error, not one per process) and migrate."""
    if command == "serve":
        settings.check_bind()
        for sock in _listen_sockets(settings.host, settings.port):
            sock.close()

    async def prepare() -> None:
        node = build_node(settings, command=command)
        try:
            await node.prepare()
        finally:
            await node.close()

    asyncio.run(prepare())
