"""LISTEN for new jobs on PostgreSQL, so idle executors start them within milliseconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from jobstore.store.database import Database
from jobstore.store.jobs import NEW_JOB_CHANNEL

log = logging.getLogger(__name__)


async def listen_for_new_jobs(
    db: Database, on_notify: Callable[[], None], *, check_seconds: float = 2.0
) -> None:
    """Call `on_notify` for every new job until cancelled; reconnects when the link drops.

    Polling stays on as the fallback, so a missed notification only delays a job.
    """
    if not db.is_postgres:
        return
    while True:
        try:
            async with db.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection

                closed = asyncio.Event()

                def _callback(*_args: Any) -> None:
                    on_notify()

                def _terminated(*_args: Any, closed: asyncio.Event = closed) -> None:
                    closed.set()

                driver.add_termination_listener(_terminated)
                await driver.add_listener(NEW_JOB_CHANNEL, _callback)
                try:
                    log.debug("listening on %s", NEW_JOB_CHANNEL)
                    on_notify()  # anything created while we were not listening
                    await closed.wait()
                    log.warning("LISTEN connection closed; reconnecting")
                finally:
                    # Never hand a connection with a listener back to the pool.
                    await conn.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection failed (%s); retrying in %.0fs", exc, check_seconds)
        await asyncio.sleep(check_seconds)
