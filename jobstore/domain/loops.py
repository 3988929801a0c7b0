"""A service's background loop: one named task, started once, cancelled and awaited on stop;
and `wait_set`, the loops' wait for a wake-up or a time-out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Loop:
    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` have passed; whether it was set.

    Loops wait with this, never `asyncio.wait_for(event.wait(), ...)`: on Python 3.11 that
    swallows a cancel that arrives as the event is set, and a loop that meant to stop waits on,
    so its service's stop hangs (gh-86296, fixed in 3.12)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
