"""The database's clock, as every node keeps it.

Nodes decide when a scheduled job is due and when a lease has expired by comparing times they
wrote; if each node used its own clock, a node running 30 s fast would rescue the live jobs of
the others and start scheduled jobs early. So each node reads the database's time at start and
every `resync_seconds`, and keeps time in between with its monotonic clock, which no wall-clock
step or NTP slew moves. Times agree across nodes to within a read's round trip.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.loops import Loop
from jobstore.store.database import Database

log = logging.getLogger(__name__)

# Warn when the machine's clock and the database's differ by more than this.
SKEW_WARNING = timedelta(seconds=2)


class DatabaseClock:
    """A Clock that tells the database's time. A background service of the node."""

    def __init__(self, db: Database, *, local: Clock | None = None, resync_seconds: float = 30.0):
        self.db = db
        self.local = local or SystemClock()
        self.resync_seconds = resync_seconds
        self._anchor: tuple[datetime, float] | None = None  # (database time, local monotonic)
        self._loop = Loop("jobstore-clock", self._resync)

    def now(self) -> datetime:
        if self._anchor is None:
            return self.local.now()  # not read yet: the machine's clock is the best guess
        at, mono = self._anchor
        return at + timedelta(seconds=self.local.monotonic() - mono)

    def monotonic(self) -> float:
        return self.local.monotonic()

    @property
    def skew(self) -> timedelta | None:
        """How far the machine's clock is ahead of the database's (None until read)."""
        return None if self._anchor is None else self.local.now() - self.now()

    async def sync(self) -> None:
        """Read the database's time; the read's midpoint is taken as the moment it tells."""
        before = self.local.monotonic()
        at = await self.db.clock_now()
        after = self.local.monotonic()
        self._anchor = (at, (before + after) / 2)

    async def start(self) -> None:
        try:
            await self.sync()
        except Exception as exc:
            log.warning("could not read the database's clock (%s); using this machine's", exc)
        skew = self.skew
        if skew is not None and abs(skew) > SKEW_WARNING:
            log.warning(
                "this machine's clock is %.1f s %s the database's; jobstore keeps the "
                "database's time",
                abs(skew.total_seconds()),
                "ahead of" if skew > timedelta(0) else "behind",
            )
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            try:
                await self.sync()
            except Exception as exc:  # keep the last reading; the monotonic clock goes on
                log.warning("could not read the database's clock: %s", exc)
