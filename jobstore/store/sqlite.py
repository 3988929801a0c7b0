"""The SQLite driver: one writer at a time, no row locks, no LISTEN.

Write transactions run on a one-connection writer engine and start with BEGIN IMMEDIATE, so
they take the write lock up front instead of failing half way; reads run on a separate pool
with plain (deferred) BEGIN and never block writers (WAL). Holding the database's only write
lock is what makes a claim, a rescue or a maintenance pass safe here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobstore.domain.errors import ConfigError
from jobstore.domain.models import AttemptOutcome
from jobstore.store.driver import SelectT
from jobstore.store.statements import (
    ATTEMPT_COLUMNS,
    ATTEMPTS_CLOSE,
    FINISH_COLUMNS,
    FINISH_RETURNING,
    FINISH_SET,
    FINISH_WHERE,
    RUNNING,
    AttemptRow,
    FinishRow,
    cancel_map,
    claim_update,
)
from jobstore.store.tables import jobs
from jobstore.store.writer_turn import WriterTurn

BUSY_TIMEOUT_MS = 10_000

# SQLite reports both outages and mistakes as OperationalError; these are the outages.
_UNAVAILABLE = (
    "database is locked",
    "unable to open",
    "disk i/o error",
    "readonly database",
    "database or disk is full",
    "disk image is malformed",
)


# SQLite's planner has chosen an index over every state plus a sort; name the partial
# index of queued rows (priority DESC, job_id) so a claim never sorts the queue. SQLAlchemy
# cannot render this hint.
def _pick(endpoints: str) -> sa.TextClause:
    return sa.text(
        "SELECT job_id FROM jobs INDEXED BY ix_jobs_queued"
        f" WHERE status = 'queued' AND concurrency_key IS NULL AND {endpoints}"
        " ORDER BY priority DESC, job_id LIMIT :limit"
    ).bindparams(sa.bindparam("endpoints", expanding=True), sa.bindparam("limit"))


# One key's first queued jobs (ix_jobs_queued_keyed); run once per key: in-process, cheap.
_QUEUED_OF_KEY = sa.text(
    "SELECT job_id, endpoint, concurrency_key, priority FROM jobs"
    " INDEXED BY ix_jobs_queued_keyed"
    " WHERE status = 'queued' AND concurrency_key = :key AND endpoint IN :endpoints"
    " ORDER BY priority DESC, job_id LIMIT :n"
).bindparams(sa.bindparam("endpoints", expanding=True))


class SqliteDriver:
    can_listen = False
    # A batch holds the only write lock, and creates, claims and finishes wait behind it:
    # 1,000 random-tagged jobs took 13-26 ms to delete (against 3 for 100), and at 1,000
    # jobs/s under retention create p99 went from about 45 ms to 90 ms.
    prune_batch_size = 100

    def __init__(self) -> None:
        self.writer_turn: WriterTurn | None = None  # set with the engines
        # Built once, all parameters bound: an idle node claims (and finds nothing) every poll.
        # One statement: the subquery is evaluated once, and the caller's write lock keeps
        # the picked rows queued until the UPDATE has moved them. The trigger
        # job_attempts_open (migration 0007) opens each claimed job's attempt inside it.
        self.claim, self.claim_with_upstream = (
            claim_update(
                jobs.c.job_id.in_(_pick(endpoints).columns(jobs.c.job_id)),
                node=sa.bindparam("node"),
                now=sa.bindparam("now"),
                lease_until=sa.bindparam("lease_until"),
            )
            for endpoints in (
                "endpoint IN :endpoints",
                "(endpoint IN :endpoints OR upstream IS NOT NULL)",
            )
        )
        # The caller's write lock holds a limited claim's picks queued until it moves them.
        self.claim_ids = claim_update(
            jobs.c.job_id.in_(sa.bindparam("ids", expanding=True)),
            jobs.c.status == "queued",
            node=sa.bindparam("node"),
            now=sa.bindparam("now"),
            lease_until=sa.bindparam("lease_until"),
        )

    # -- connections ---------------------------------------------------------------------------

    def url_normalize(self, url: URL) -> URL:
        if url.database in (None, "", ":memory:"):
            raise ConfigError("jobstore needs a SQLite file, not an in-memory database")
        folder = Path(url.database).resolve().parent
        if not folder.is_dir():
            raise ConfigError(f"the folder of the SQLite database does not exist: {folder}")
        return url.set(drivername="sqlite+aiosqlite")

    def engines_create(
        self, url: URL, *, pool_size: int, pooler: str, connect_args: Mapping[str, Any]
    ) -> tuple[AsyncEngine, AsyncEngine]:
        if pooler != "none":
            raise ConfigError("--database-pooler applies to PostgreSQL only; SQLite has no pooler")
        if connect_args:
            raise ConfigError("--database-connect-args applies to PostgreSQL only")
        writer = _engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
        self.writer_turn = WriterTurn(Path(url.database or ""), BUSY_TIMEOUT_MS / 1000)
        reader = _engine(url, begin="BEGIN", pool_size=pool_size)
        return writer, reader

    def error_is_unavailable(self, exc: sa_exc.DBAPIError) -> bool:
        message = str(exc.orig).lower()
        return any(m in message for m in _UNAVAILABLE)

    # -- statements ----------------------------------------------------------------------------

    def insert_skip_conflict(self, table: sa.Table, keys: Sequence[sa.Column[Any]]) -> sa.Insert:
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)

    def select_for_update(self, stmt: SelectT, *, skip_locked: bool = False) -> SelectT:
        # No row locks (SQLAlchemy would drop FOR UPDATE without a word): the caller's
        # BEGIN IMMEDIATE already holds the database's only write lock.
        return stmt

    # The batch statements below run at the driver level with numbered parameters (?1, ?2,
    # ...) bound from a tuple: through SQLAlchemy every one of a batch's thousands of
    # parameters is processed in Python, and sqlite3 binds named ones (:name) one dict
    # lookup at a time, four times slower than these.

    async def job_finish(
        self, conn: AsyncConnection, rows: Sequence[FinishRow], *, now: datetime
    ) -> list[Any]:
        # The trigger job_attempts_close (migration 0007) closes each attempt inside this
        # UPDATE, from the job's new state: done, error or cancelled, and the status map's
        # error message. Only a run that timed out says more than its job's state does.
        values = [value for row in rows for value in row[: len(_JOB_COLUMNS)]]
        params = (*values, _stored(now), json.dumps(cancel_map()), RUNNING)
        ended = list((await conn.exec_driver_sql(_finish(len(rows)), params)).all())
        held = {r.job_id for r in ended}
        timed_out = [
            (r[0], r[1]) for r in rows if r[8] == AttemptOutcome.TIMEOUT.value and r[0] in held
        ]
        if timed_out:
            await conn.exec_driver_sql(
                "UPDATE job_attempts SET outcome = 'timeout'"
                " WHERE job_id = ? AND attempt = ? AND outcome = 'error'",
                timed_out,
            )
        return ended

    async def attempts_close(
        self, conn: AsyncConnection, rows: Sequence[AttemptRow], *, now: datetime
    ) -> None:
        params = (*(value for row in rows for value in row), _stored(now))
        await conn.exec_driver_sql(_attempts_close(len(rows)), params)

    async def clock_now(self, conn: AsyncConnection) -> datetime:
        # An embedded database keeps no time of its own: this is the machine's clock, which
        # every process using the file shares. ('%f': seconds with milliseconds.)
        text = (
            await conn.execute(sa.select(sa.func.strftime("%Y-%m-%d %H:%M:%f", "now")))
        ).scalar_one()
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    # -- locks and notifications ---------------------------------------------------------------

    async def maintenance_lock(self, conn: AsyncConnection, name: str) -> bool:
        return True  # the transaction holds the only write lock: the caller is alone

    async def limited_claim_lock(self, conn: AsyncConnection) -> None:
        return None  # the transaction holds the only write lock: no other claim runs

    async def queued_of_keys(
        self, conn: AsyncConnection, wants: Sequence[tuple[str, int]], endpoints: Sequence[str]
    ) -> list[Any]:
        rows: list[Any] = []
        for key, n in wants:
            params = {"key": key, "n": n, "endpoints": list(endpoints)}
            rows += (await conn.execute(_QUEUED_OF_KEY, params)).all()
        return rows

    def migration_lock(self, conn: Connection) -> None:
        return None  # the migration's transaction holds the only write lock

    def listen_engine_create(self, url: URL, *, connect_args: Mapping[str, Any]) -> AsyncEngine:
        raise ConfigError("--listen-database-url applies to PostgreSQL only; SQLite cannot listen")

    async def new_jobs_notify(self, conn: AsyncConnection, payload: str = "") -> None:
        return None  # nobody can listen: other nodes find new jobs by polling

    async def new_jobs_listen(
        self,
        engine: AsyncEngine,
        on_notify: Callable[[str], None],
        *,
        while_listening: Callable[[], Coroutine[Any, Any, None]] | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        return None

    async def read_only_reason(self, conn: AsyncConnection) -> str | None:
        return None  # a file we could not write would have failed at start

    async def upkeep_warning(self, conn: AsyncConnection) -> str | None:
        return None  # SQLite reuses freed pages itself


def _engine(url: URL, *, begin: str, pool_size: int) -> AsyncEngine:
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
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit is on disk before a create is answered, even across power loss.
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


_JOB_COLUMNS = FINISH_COLUMNS[:8]  # FinishRow without the attempt's outcome and error


def _stored(when: datetime) -> str:
    """A time as UTCDateTime stores it on SQLite (naive UTC text, microseconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _values(width: int, count: int, shared: str = "") -> str:
    """A VALUES list of `count` rows of `width` numbered parameters, ?1 onwards; each row
    ends with `shared` (one parameter every row repeats), if given."""
    tail = f", {shared}" if shared else ""
    return ", ".join(
        "(" + ", ".join(f"?{row * width + col + 1}" for col in range(width)) + tail + ")"
        for row in range(count)
    )


def _numbered(sql: str, after: int, *names: str) -> str:
    """`sql` with each :name replaced by the parameter numbered after the VALUES list's."""
    for n, name in enumerate(names, start=after + 1):
        sql = sql.replace(f":{name}", f"?{n}")
    return sql


@functools.lru_cache(maxsize=64)
def _finish(count: int) -> str:
    """The finish UPDATE for `count` rows, joined to a VALUES list; then :now, :cancel_map
    and :running."""
    # The fence's `status = 'running'` is a join term against the VALUES list (`v.was`, one
    # parameter every row shares), not a constant. With statistics (ANALYZE, PRAGMA optimize)
    # SQLite builds a Bloom filter for a join whose inner table has a constant filter, and
    # builds it by reading the whole table: with a million finished jobs each finish took
    # 110 ms instead of 3.
    width = len(_JOB_COLUMNS)
    values = _values(width, count, shared=":running")
    sql = (
        f"WITH v({', '.join(_JOB_COLUMNS)}, was) AS (VALUES {values}) "
        "UPDATE jobs SET "
        + FINISH_SET.format(cancel_map=":cancel_map", status_map="v.status_map")
        + "FROM v"
        + FINISH_WHERE.format(running="v.was")
        + FINISH_RETURNING
    )
    return _numbered(sql, width * count, "now", "cancel_map", "running")


@functools.lru_cache(maxsize=64)
def _attempts_close(count: int) -> str:
    """The UPDATE closing `count` attempts, joined to a VALUES list; then :now."""
    width = len(ATTEMPT_COLUMNS)
    sql = (
        f"WITH v({', '.join(ATTEMPT_COLUMNS)}) AS (VALUES {_values(width, count)})" + ATTEMPTS_CLOSE
    )
    return _numbered(sql, width * count, "now")
