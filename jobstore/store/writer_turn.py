"""SQLite's one write lock, taken in turn by the jobstore processes that share a database.

SQLite lets one writer at a time into a database. A second writer that asks (BEGIN IMMEDIATE)
waits in SQLite's busy handler, which sleeps between tries: 1, 2, 5, 10 ... up to 100 ms. With
several processes writing one file (`--processes`, or a `serve` and a `worker`), those sleeps,
not the work, set the pace: two processes holding 1,000 creates a second answered in 60 ms
each instead of 2.

So each process takes a turn first: an exclusive `flock` on a file beside the database
(`<database>-jobstore-lock`), held from before BEGIN to after COMMIT. The process's own
writers already queue for its one writer connection, so only the holder of that connection
asks. An uncontended turn costs two system calls; a contended one waits in a thread of its
own, blocked in the kernel, which wakes it the moment the turn is free. SQLite's busy handler
is left to writers that are not jobstore (the sqlite3 shell, a backup).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOCK_SUFFIX = "-jobstore-lock"


class WriterTurn:
    """The cross-process turn to write one SQLite database (an async context manager)."""

    def __init__(self, database: Path, timeout: float) -> None:
        self.path = Path(f"{database}{LOCK_SUFFIX}")
        self.timeout = timeout
        self._fd: int | None = None
        self._waiter: ThreadPoolExecutor | None = None

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await self._wait(fd)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    async def _wait(self, fd: int) -> None:
        """Block in a thread until the turn is ours; TimeoutError (an OSError: the database
        out of reach, to the caller) after `timeout` seconds."""
        if self._waiter is None:
            self._waiter = ThreadPoolExecutor(1, thread_name_prefix="jobstore-writer-turn")
        guard = threading.Lock()
        state = {"taken": False, "given_up": False}

        def take() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with guard:
                if state["given_up"]:  # the caller left: hand the turn straight back
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:
                    state["taken"] = True

        waiting = asyncio.get_running_loop().run_in_executor(self._waiter, take)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(waiting)
        except BaseException as exc:  # timed out, or cancelled
            with guard:
                state["given_up"] = True
                if state["taken"]:  # taken just as we gave up
                    fcntl.flock(fd, fcntl.LOCK_UN)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"waited {self.timeout:g}s for the write lock of the SQLite database"
                ) from None
            raise

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.shutdown(wait=False, cancel_futures=True)
            self._waiter = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
