"""wait_set: the loops' wait for a wake-up, which a stop must always be able to cancel."""

from __future__ import annotations

import asyncio

import pytest

from jobstore.domain.loops import wait_set


async def test_wait_set_tells_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 5) is True


async def test_a_cancel_that_comes_as_the_event_is_set_is_not_swallowed() -> None:
    """asyncio.wait_for on Python 3.11 returns normally here, and a `while True` loop around it
    never stops (gh-86296)."""
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_set(event, 30))
    await asyncio.sleep(0)  # now inside the wait
    event.set()
    waiting.cancel()  # in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        await waiting
