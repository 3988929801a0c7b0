"""One database: its driver, engines, transactions and repositories.

The driver (`sqlite.py`, `postgres.py`) is picked once from the URL. It builds the engines:
SQLite a one-connection writer (BEGIN IMMEDIATE) beside a read pool, PostgreSQL one pool for
both. Outages are reported as StoreUnavailable; other errors pass through. At start, a database
that cannot be reached or used is reported as DatabaseUnusable, one line (see `diagnose.py`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobstore.domain.errors import ConfigError, DatabaseUnusable, StoreUnavailable
from jobstore.domain.models import POOLER_MODES
from jobstore.store.accounts import AuthStore
from jobstore.store.cdm import CdmStore
from jobstore.store.diagnose import describe_connect_error, display_url, missing_file
from jobstore.store.driver import Driver
from jobstore.store.jobs import JobStore
from jobstore.store.limits import LimitStore
from jobstore.store.listen import UNHEARD_POLL_SECONDS, ListenCheck
from jobstore.store.postgres import PostgresDriver
from jobstore.store.schedules import ScheduleStore
from jobstore.store.sqlite import SqliteDriver

log = logging.getLogger(__name__)

# Waiting for a database at start: the pause after a failed try starts at FIRST_PAUSE and
# doubles up to MAX_PAUSE; a try that gets no answer for CONNECT_TIMEOUT fails.
FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10.0

# The driver per URL scheme (`make_url(...).get_backend_name()`).
_DRIVERS: dict[str, Callable[[], Driver]] = {
    "sqlite": SqliteDriver,
    "postgresql": PostgresDriver,
    "postgres": PostgresDriver,
}


def _is_unavailable(exc: BaseException, driver: Driver) -> bool:
    """A failure of the database's reachability, not of the statement."""
    if isinstance(exc, sa_exc.TimeoutError | OSError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, OSError):
        return True
    return driver.error_is_unavailable(exc)


def _connect(url: str) -> tuple[URL, Driver]:
    """The driver for a plain `sqlite:///` or `postgresql://` URL, and the URL it uses."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        # SQLAlchemy's message repeats the URL: say it again ourselves, password hidden.
        shown = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
        raise ConfigError(
            f"invalid database URL {shown!r}: expected sqlite:///path.db "
            "or postgresql://user:password@host:port/database"
        ) from exc
    backend = parsed.get_backend_name()
    make_driver = _DRIVERS.get(backend)
    if make_driver is None:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    driver = make_driver()
    return driver.url_normalize(parsed), driver


def normalize_url(url: str) -> URL:
    """Pick the async driver for a plain `sqlite:///` or `postgresql://` URL."""
    return _connect(url)[0]


class Database:
    """One database URL: its driver, engines and repositories; hands out transactions."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pooler: str = "none",
        listen_url: str | None = None,
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        """`pooler` and `listen_url` say how to reach PostgreSQL through PgBouncer and the
        like (docs/operations.md); `connect_args` go to the database driver as typed values."""
        if pooler not in POOLER_MODES:
            raise ConfigError(f"database pooler must be one of {', '.join(POOLER_MODES)}")
        self.url, self.driver = _connect(url)
        args = dict(connect_args or {})
        self._writer, self._reader = self.driver.engines_create(
            self.url, pool_size=pool_size, pooler=pooler, connect_args=args
        )
        # LISTEN holds a connection of its own for the node's life. It needs a real session:
        # through a transaction pooler it hears nothing, so then only a direct URL will do.
        self._listen_engine: AsyncEngine | None = None
        if listen_url is not None:
            listen, listen_driver = _connect(listen_url)
            if type(listen_driver) is not type(self.driver):
                raise ConfigError("the listen database URL must be of the same kind of database")
            self._listen_engine = self.driver.listen_engine_create(listen, connect_args=args)
        elif self.driver.can_listen and pooler != "transaction":
            self._listen_engine = self.driver.listen_engine_create(self.url, connect_args=args)
        self._listen_check = ListenCheck(self.driver, self.transaction)
        # The repositories, built once; each speaks to this database through its driver.
        self.jobs = JobStore(self.driver)
        self.cdm = CdmStore(self.driver)
        self.accounts = AuthStore()
        self.schedules = ScheduleStore(self.driver)
        self.limits = LimitStore(self.driver)

    @property
    def shown_url(self) -> str:
        """The URL as shown to people: no password, no `+driver`, a SQLite path made absolute."""
        return display_url(self.url)

    async def check_reachable(self, *, must_exist: bool = False, writable: bool = False) -> None:
        """Connect once and run a trivial query, or raise DatabaseUnusable (one line: which
        database, why, what to do). With `must_exist`, a SQLite file that does not exist is
        refused instead of created; with `writable`, a server that takes no writes (a standby)
        is refused too."""
        if must_exist and (missing := missing_file(self.url)) is not None:
            raise missing
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                async with self._reader.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    read_only = await self.driver.read_only_reason(conn) if writable else None
        except Exception as exc:
            unusable = describe_connect_error(exc, self.url)
            raise unusable or DatabaseUnusable(
                f"database {self.shown_url}: {_brief(exc)}", "check the database URL"
            ) from exc
        if read_only is not None:
            # Waiting may help: a standby may be about to be promoted.
            raise DatabaseUnusable(
                f"database {self.shown_url}: {read_only}",
                "give the primary's URL (with several hosts, add target_session_attrs=read-write)",
                retryable=True,
            )

    async def wait_until_reachable(self, seconds: float, *, writable: bool = False) -> None:
        """`check_reachable`, tried again while waiting may help (a server that is starting, a
        database about to be created) until `seconds` have passed; 0 tries once. Each retry
        is logged at info level."""
        deadline = time.monotonic() + seconds
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                await self.check_reachable(writable=writable)
                return
            except DatabaseUnusable as exc:
                left = deadline - time.monotonic()
                if not exc.retryable or left <= 0:
                    if exc.retryable and seconds > 0:
                        problem = f"{exc.problem}, after waiting {seconds:g} s"
                        raise DatabaseUnusable(problem, exc.hint) from exc
                    raise
                step = min(pause, left)
                log.info("%s; trying again in %.1f s", exc.problem, step)
                await asyncio.sleep(step)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)

    @property
    def can_listen(self) -> bool:
        """Whether `listen_for_new_jobs` can hear creates made on other nodes."""
        return self._listen_engine is not None

    @property
    def hears_new_jobs(self) -> bool:
        """A LISTEN is up, and the check NOTIFY it was sent came back."""
        return self._listen_check.heard

    def idle_poll_seconds(self, poll_seconds: float) -> float:
        """How long an idle executor may wait before it looks for work again: `poll_seconds`
        where creates on other nodes are announced to it (or, on SQLite, where nothing could
        be), else at most UNHEARD_POLL_SECONDS."""
        if not self.driver.can_listen or self.hears_new_jobs:
            return poll_seconds
        return min(poll_seconds, UNHEARD_POLL_SECONDS)

    async def listen_for_new_jobs(self, on_notify: Callable[[bool], None]) -> None:
        """Call `on_notify(limited)` for every create on any node (`limited`: some of its jobs
        wait for the limited claim), until cancelled; returns at once
        when the database cannot listen (see `can_listen`). Reconnects when the link drops,
        and checks each LISTEN (`store/listen.py`)."""
        if self._listen_engine is None:
            if self.driver.can_listen:
                log.warning(
                    "LISTEN cannot work through a transaction pooler: new jobs on other nodes "
                    "are found by polling every %.1f s; give --listen-database-url (a direct "
                    "connection to PostgreSQL) to hear of them at once",
                    UNHEARD_POLL_SECONDS,
                )
            return
        check = self._listen_check
        await self.driver.new_jobs_listen(
            self._listen_engine,
            lambda payload: check.notified(payload, on_notify),
            while_listening=check.while_listening,
        )

    async def read_only_reason(self) -> str | None:
        """Why the database cannot take writes now; None when it can."""
        async with self.reading() as conn:
            return await self.driver.read_only_reason(conn)

    async def upkeep_warning(self) -> str | None:
        """What in the database's settings will slow jobstore down over time; None if nothing."""
        async with self.reading() as conn:
            return await self.driver.upkeep_warning(conn)

    @property
    def engine(self) -> AsyncEngine:
        """The engine that writes (migrations, listeners)."""
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._outages():
            turn = self.driver.writer_turn
            if turn is None:
                async with self._writer.begin() as conn:
                    yield conn
                return
            # SQLite: this process's one writer connection first, then the turn among
            # processes (store/writer_turn.py), held until after the COMMIT.
            async with self._writer.connect() as conn, turn(), conn.begin():
                yield conn

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection of the read pool, for reads only (on PostgreSQL without a pooler in
        transaction mode, its statements run without BEGIN: each is its own transaction)."""
        with self._outages():
            async with self._reader.connect() as conn:
                yield conn

    @contextmanager
    def _outages(self) -> Iterator[None]:
        """Report a database out of reach as StoreUnavailable; let other errors through."""
        try:
            yield
        except Exception as exc:
            if _is_unavailable(exc, self.driver):
                # The detail (addresses, driver text) is for the operator, not the client.
                log.warning("database unavailable: %s", _brief(exc))
                raise StoreUnavailable("database unavailable") from exc
            raise

    async def clock_now(self) -> datetime:
        """The database's time: the clock every node agrees on."""
        async with self.reading() as conn:
            return await self.driver.clock_now(conn)

    async def ping(self) -> bool:
        """True when the database answers and has jobstore's schema."""
        try:
            async with self.reading() as conn:
                await conn.execute(text("SELECT job_id FROM jobs WHERE job_id = 0"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self.driver.writer_turn is not None:
            self.driver.writer_turn.close()
        if self._reader.sync_engine.pool is not self._writer.sync_engine.pool:
            await self._reader.dispose()
        if self._listen_engine is not None:
            await self._listen_engine.dispose()


def _brief(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump and help link."""
    inner = getattr(exc, "orig", None) or exc
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0]
