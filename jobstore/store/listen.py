"""Hearing of new jobs created on other nodes (PostgreSQL LISTEN), and knowing whether we do.

A LISTEN can fail silently: through a transaction pooler it hears nothing and nobody says so.
So every LISTEN connection is checked for as long as it lives: the node sends a NOTIFY of its
own the way other nodes send theirs, and trusts the LISTEN once that comes back. One that does
not is logged (once, until it works again) and checked again later; meanwhile idle executors
look for work every UNHEARD_POLL_SECONDS instead of waiting to be woken.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from jobstore.domain.loops import wait_set
from jobstore.store.driver import LIMITED_PAYLOAD, Driver

log = logging.getLogger(__name__)

# Payloads of these NOTIFYs are checks of some node's LISTEN, not new jobs: nobody wakes up.
CHECK_PREFIX = "check-"
LISTEN_CHECK_SECONDS = 5.0  # how long a check NOTIFY may take to come back
LISTEN_RECHECK_SECONDS = 30.0  # after a check that failed, or could not be sent
UNHEARD_POLL_SECONDS = 0.2

Transaction = Callable[[], AbstractAsyncContextManager[Any]]


class ListenCheck:
    """Whether this node's LISTEN hears notifications now (`heard`)."""

    def __init__(self, driver: Driver, transaction: Transaction) -> None:
        self._driver = driver
        self._transaction = transaction
        self._token = f"{CHECK_PREFIX}{uuid.uuid4().hex}"
        self._came_back = asyncio.Event()
        self._complained = False
        self.heard = False

    def notified(self, payload: str, on_notify: Callable[[bool], None]) -> None:
        """A notification arrived: a check (ours comes back), or new jobs (limited ones, or
        not: what `on_notify` is told)."""
        if payload.startswith(CHECK_PREFIX):
            if payload == self._token:
                self._came_back.set()
            return
        on_notify(payload == LIMITED_PAYLOAD)

    async def while_listening(self) -> None:
        """Run for the life of one LISTEN connection: check it, and again after a failure."""
        try:
            while True:
                if await self._check_once():
                    await asyncio.Event().wait()  # trusted until this LISTEN ends
                await asyncio.sleep(LISTEN_RECHECK_SECONDS)
        finally:
            self.heard = False

    async def _check_once(self) -> bool:
        self._came_back.clear()
        try:
            async with self._transaction() as conn:
                await self._driver.new_jobs_notify(conn, self._token)
        except Exception as exc:  # the database is away: not the LISTEN's fault
            log.warning("could not check LISTEN (%s); trying again later", exc)
            return False
        if not await wait_set(self._came_back, LISTEN_CHECK_SECONDS):
            self._unheard()
            return False
        if self._complained:
            log.info("LISTEN hears notifications again: new jobs are picked up at once")
            self._complained = False
        self.heard = True
        return True

    def _unheard(self) -> None:
        self.heard = False
        if not self._complained:
            self._complained = True
            log.warning(
                "LISTEN hears nothing: a check NOTIFY did not come back within %.0f s (a "
                "transaction pooler between this node and PostgreSQL? see --listen-database-url);"
                " looking for new jobs every %.1f s instead",
                LISTEN_CHECK_SECONDS,
                UNHEARD_POLL_SECONDS,
            )
