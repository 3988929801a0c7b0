"""Background tasks the executor starts on the side: each named, referenced until it ends,
and logged if it dies with an error (asyncio keeps only weak references to tasks, and an
exception in a task nobody awaits is otherwise lost)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Tasks:
    def __init__(self) -> None:
        self._live: set[asyncio.Future[Any]] = set()

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._live.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._live.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else "task"
            log.error("%s died: %r", name, exc, exc_info=exc)

    async def wait(self) -> None:
        """Wait for every task spawned so far (and those they spawn) to end; a spawned task
        calling this does not wait for itself."""
        me = asyncio.current_task()
        while others := [t for t in self._live if t is not me]:
            await asyncio.gather(*others, return_exceptions=True)
