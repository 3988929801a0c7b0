"""Engines and transactions, per dialect.

SQLite allows one writer at a time. Write transactions run on a one-connection writer engine
and start with BEGIN IMMEDIATE, so they take the write lock up front instead of failing half
way; reads run on a separate pool with plain (deferred) BEGIN and never block writers (WAL).
PostgreSQL uses one pooled engine for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobstore.domain.errors import ConfigError, StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 10_000
log = logging.getLogger(__name__)

# SQLSTATE classes that mean "the server cannot serve us" rather than "this statement is
# wrong": connection exception, insufficient resources, operator intervention (shutting down,
# starting up), invalid authorization.
_PG_UNAVAILABLE_STATES = ("08", "53", "57P", "28")
# SQLite reports both outages and mistakes as OperationalError; these are the outages.
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "unable to open",
    "disk i/o error",
    "readonly database",
    "database or disk is full",
    "disk image is malformed",
)


def _is_unavailable(exc: BaseException, dialect: str) -> bool:
    """A failure of the database's reachability, not of the statement."""
    if isinstance(exc, sa_exc.TimeoutError | OSError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, OSError):
        return True
    if dialect == "sqlite":
        message = str(exc.orig).lower()
        return any(m in message for m in _SQLITE_UNAVAILABLE)
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_PG_UNAVAILABLE_STATES)
    return isinstance(exc, sa_exc.OperationalError)
    if exc.connection_invalidated or isinstance(exc.orig, OSError):
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_PG_UNAVAILABLE_STATES)
    if isinstance(exc, sa_exc.OperationalError):
        message = str(exc.orig).lower()
        return any(m in message for m in _SQLITE_UNAVAILABLE) or (
            "sqlite" not in type(exc.orig).__module__.lower()
            and "sqlite" not in str(type(exc.orig)).lower()
        )
    return False


def normalize_url(url: str) -> URL:
    """Pick the async driver for a plain `sqlite:///` or `postgresql://` URL."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("jobstore needs a SQLite file, not an in-memory database")
        folder = Path(parsed.database).resolve().parent
        if not folder.is_dir():
            raise ConfigError(f"the folder of the SQLite database does not exist: {folder}")
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: URL, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=600,
        pool_pre_ping=False,
        hide_parameters=True,  # error messages must not carry job payloads into logs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit is on disk before a create is answered, even across power loss.
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The engines for one database URL; hands out connections inside transactions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.dialect: str = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self._writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", pool_size=1)
            self._reader = _sqlite_engine(self.url, begin="BEGIN", pool_size=pool_size)
        else:
            self._writer = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                # No ping per checkout: it is a round trip before every transaction (about
                # 0.6 ms of a 3 ms create here). A connection the server dropped fails its
                # next statement instead; SQLAlchemy then discards every pooled connection
                # opened before, so a database restart costs one 503, not one per connection.
                pool_pre_ping=False,
                hide_parameters=True,
            )
            self._reader = self._writer

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        """The engine that writes (migrations, listeners)."""
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._outages():
            async with self._writer.begin() as conn:
                yield conn

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction on the read pool."""
        with self._outages():
            async with self._reader.connect() as conn:
                yield conn

    @contextmanager
    def _outages(self) -> Iterator[None]:
        """Report a database out of reach as StoreUnavailable; let other errors through."""
        try:
            yield
        except Exception as exc:
            if _is_unavailable(exc, self.dialect):
                # The detail (addresses, driver text) is for the operator, not the client.
                log.warning("database unavailable: %s", _brief(exc))
                raise StoreUnavailable("database unavailable") from exc
            raise

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
        if self._reader is not self._writer:
            await self._reader.dispose()


def _brief(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump and help link."""
    inner = getattr(exc, "orig", None) or exc
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0]
