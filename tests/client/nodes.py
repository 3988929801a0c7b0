"""Helpers of the client's tests: real `jobstore serve` processes, and AsyncClient made to
look like Client so that one test body runs both (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jobstore.client import AsyncClient
from tests.support.e2e import clean_env, free_port

Connect = Callable[..., Any]  # (url, **Client arguments) -> Client, or Blocking(AsyncClient)


@dataclass
class Node:
    """One `jobstore serve` process."""

    url: str
    database_url: str
    log: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, workdir: Path, *args: str, database_url: str | None = None) -> Node:
        """Serve `database_url` (default: a SQLite file in `workdir`) on a free port, once it
        answers. The caller kills it."""
        port = free_port()
        database_url = database_url or f"sqlite:///{workdir / 'jobstore.db'}"
        log = workdir / f"node-{port}.log"
        argv = [sys.executable, "-m", "jobstore", "serve", "--database-url", database_url]
        argv += ["--port", str(port), "--log-level", "warning", "--poll-seconds", "0.2", *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=workdir, env=clean_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        node = cls(f"http://127.0.0.1:{port}", database_url, log, process)
        try:
            node.wait_ready()
        except BaseException:
            node.kill()
            raise
        return node

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the node exited while starting:\n{self.logs()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the node did not answer in {timeout}s:\n{self.logs()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


StartNode = Callable[..., Node]  # (*serve_args, database_url=None) -> Node


class Blocking:
    """An AsyncClient whose calls are run to completion on one event loop, so that a test
    written against Client's methods runs AsyncClient's too. An async iterator comes back as
    an iterator over everything it yielded."""

    def __init__(self, client: AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = method(*args, **kwargs)
            if inspect.isasyncgen(answer):
                return iter(self.loop.run_until_complete(_drain(answer)))
            return self.loop.run_until_complete(answer)

        return call


async def _drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]
