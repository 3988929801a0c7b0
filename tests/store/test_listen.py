"""The LISTEN check (store/listen.py) against a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from jobstore.store import Database
from jobstore.store.listen import ListenCheck


async def test_a_listen_check_stops_when_cancelled_as_its_notify_comes_back(
    db: Database,
) -> None:
    """The CI hang of 2026-12-06: the listener's stop cancelled the check just as its NOTIFY
    came back; the check took the cancel for a timely answer, went on to trust the LISTEN
    forever, and the executor's stop waited on it until the test timed out."""
    sent = asyncio.Event()

    @asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        async with db.transaction() as conn:
            yield conn
        sent.set()  # the check's NOTIFY is committed: it now waits for it to come back

    check = ListenCheck(db.driver, transaction)
    task = asyncio.create_task(check.while_listening())
    await asyncio.wait_for(sent.wait(), 10)
    await asyncio.sleep(0)
    check.notified(check._token, lambda limited: None)  # it comes back ...
    task.cancel()  # ... as the listener is stopped
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}, "the check went on after its cancel"
    assert task.cancelled()
    assert check.heard is False
