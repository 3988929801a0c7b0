"""The PostgreSQL driver: row locks (SKIP LOCKED), advisory locks and LISTEN/NOTIFY.

One pooled engine serves reads and writes; nodes claim side by side, each skipping the rows
another is claiming, and an idle node hears about new jobs within milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from jobstore.domain.errors import ConfigError
from jobstore.store.driver import LIMITED_PAYLOAD, SelectT
from jobstore.store.statements import (
    ATTEMPT_COLUMNS,
    ATTEMPTS_CLOSE,
    CANCEL_MESSAGE,
    CLAIM_ORDER,
    FINISH_COLUMNS,
    FINISH_RETURNING,
    FINISH_SET,
    FINISH_WHERE,
    HAS_NO_KEY,
    IS_QUEUED,
    AttemptRow,
    FinishRow,
    cancel_map,
    claim_update,
)
from jobstore.store.tables import UTCDateTime, job_attempts, jobs

log = logging.getLogger(__name__)

NEW_JOB_CHANNEL = "jobstore_new_job"
# Any constant works; it only has to be the same on every node.
_MIGRATION_LOCK_KEY = 0x6A6F6273  # "jobs"
_LIMITED_CLAIM_LOCK_KEY = 0x6A6C696D  # "jlim"
# Each key's first queued jobs, one index range per key (ix_jobs_queued_keyed).
_QUEUED_OF_KEYS = sa.text(
    """SELECT j.job_id, j.endpoint, j.concurrency_key, j.priority
       FROM unnest(CAST(:keys AS TEXT[]), CAST(:counts AS INTEGER[])) AS k(key, n)
       CROSS JOIN LATERAL (
         SELECT job_id, endpoint, concurrency_key, priority FROM jobs
         WHERE status = 'queued' AND concurrency_key = k.key
           AND endpoint = ANY(CAST(:endpoints AS TEXT[]))
         ORDER BY priority DESC, job_id LIMIT k.n
       ) AS j"""
)
# SQLSTATE classes that mean "the server cannot serve us" rather than "this statement is
# wrong": connection exception, insufficient resources, operator intervention (shutting down,
# starting up), invalid authorization, and a read-only server (a standby, or a primary demoted
# in a failover: the next connection may reach the new primary).
READ_ONLY_STATE = "25006"
_UNAVAILABLE_STATES = ("08", "53", "57P", "28", READ_ONLY_STATE)
# asyncpg's connection arguments that are numbers: in a URL's query they arrive as text.
_NUMERIC_ARGS: dict[str, type] = {
    "statement_cache_size": int,
    "max_cached_statement_lifetime": int,
    "max_cacheable_statement_size": int,
    "command_timeout": float,
    "timeout": float,
}

# One statement ends the jobs and closes their attempts (data-modifying CTEs). An attempt's
# outcome is what its run reported, unless its job ended `cancelled` although the run reported
# something else: a cancel request overtook it, and the attempt is closed `cancelled` too.
_FINISH = sa.text(
    """WITH v AS (
         SELECT * FROM unnest(CAST(:job_id AS BIGINT[]), CAST(:attempt AS INTEGER[]),
                              CAST(:status AS TEXT[]), CAST(:status_map AS TEXT[]),
                              CAST(:done AS BOOLEAN[]), CAST(:renc AS TEXT[]),
                              CAST(:rdata AS BYTEA[]), CAST(:rtext AS TEXT[]),
                              CAST(:aoutcome AS TEXT[]), CAST(:aerror AS TEXT[]))
           AS v(job_id, attempt, status, status_map, done, renc, rdata, rtext, aoutcome, aerror)
       ), ended AS (
         UPDATE jobs SET """
    + FINISH_SET.format(
        cancel_map="CAST(:cancel_map AS JSON)", status_map="CAST(v.status_map AS JSON)"
    )
    + "FROM v"
    + FINISH_WHERE.format(running="'running'")
    + FINISH_RETURNING
    + """, v.aoutcome, v.aerror
       ), closed AS (
         UPDATE job_attempts SET
           finished_at = :now,
           outcome = CASE WHEN ended.status = 'cancelled' AND ended.aoutcome <> 'cancelled'
                          THEN 'cancelled' ELSE ended.aoutcome END,
           error_message = CASE WHEN ended.status = 'cancelled' AND ended.aoutcome <> 'cancelled'
                                THEN :cancel_message ELSE ended.aerror END
         FROM ended
         WHERE job_attempts.job_id = ended.job_id AND job_attempts.attempt = ended.attempt
           AND job_attempts.outcome IS NULL
       )
       SELECT job_id, status, remove_on_complete FROM ended"""
).bindparams(sa.bindparam("now", type_=UTCDateTime()))
_ATTEMPTS_CLOSE = sa.text(
    """WITH v AS (
         SELECT * FROM unnest(CAST(:job_id AS BIGINT[]), CAST(:attempt AS INTEGER[]),
                              CAST(:outcome AS TEXT[]), CAST(:error AS TEXT[]))
           AS v(job_id, attempt, outcome, error)
       )"""
    + ATTEMPTS_CLOSE
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


def _claim_opening_attempts(*which: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The claim of the queued jobs `which` selects, opening their attempts in the same
    statement: one round trip per claim."""
    node = sa.bindparam("node", type_=sa.String())
    now = sa.bindparam("now", type_=UTCDateTime())
    claimed = claim_update(
        *which,
        node=node,
        now=now,
        lease_until=sa.bindparam("lease_until", type_=UTCDateTime()),
    ).cte("claimed")
    opened = sa.insert(job_attempts).from_select(
        ["job_id", "attempt", "node", "started_at"],
        sa.select(claimed.c.job_id, claimed.c.attempt, node, now),
    )
    return sa.select(claimed).add_cte(opened.cte("opened"))


class PostgresDriver:
    can_listen = True
    writer_turn = None  # row locks: writers need no turns
    prune_batch_size = 1000  # deleting old rows locks only them: creates do not wait

    def __init__(self) -> None:
        # Built once, all parameters bound: building and compiling it per claim cost more than
        # a small claim itself. Rows other nodes are claiming are skipped (FOR UPDATE SKIP
        # LOCKED). A MATERIALIZED CTE runs once. As an IN (subquery), PostgreSQL may rescan it
        # in a nested loop, and each rescan skips the rows it just locked: more than `limit`.
        def claim_of(endpoints: sa.ColumnElement[bool]) -> sa.Executable:
            picked = (
                sa.select(jobs.c.job_id)
                .where(IS_QUEUED, HAS_NO_KEY, endpoints)
                .order_by(*CLAIM_ORDER)
                .limit(sa.bindparam("limit", type_=sa.Integer()))
                .with_for_update(skip_locked=True)
                .cte("picked")
                .prefix_with("MATERIALIZED")
            )
            # The picks are queued rows this transaction has locked: they stay queued until
            # the UPDATE moves them, so it joins on the key alone. A second `status =
            # 'queued'` here let the planner, when the statistics still said "no queued
            # rows" (a burst after ANALYZE saw only finished jobs), scan every queued row
            # and join each to the picks: 1.4 s a claim with 47,000 queued.
            return _claim_opening_attempts(jobs.c.job_id == picked.c.job_id)

        self.claim = claim_of(jobs.c.endpoint.in_(sa.bindparam("endpoints", expanding=True)))
        self.claim_with_upstream = claim_of(
            sa.or_(
                jobs.c.endpoint.in_(sa.bindparam("endpoints", expanding=True)),
                jobs.c.upstream.is_not(None),
            )
        )
        # A limited claim's picks are held by its lock (limited_claim_lock): no SKIP LOCKED.
        self.claim_ids = _claim_opening_attempts(
            jobs.c.job_id.in_(sa.bindparam("ids", expanding=True)), IS_QUEUED
        )

    # -- connections ---------------------------------------------------------------------------

    def url_normalize(self, url: URL) -> URL:
        return url.set(drivername="postgresql+asyncpg")

    def engines_create(
        self, url: URL, *, pool_size: int, pooler: str, connect_args: Mapping[str, Any]
    ) -> tuple[AsyncEngine, AsyncEngine]:
        url, args = _connect_args(url, connect_args)
        if pooler == "transaction":
            # A transaction pooler gives each transaction whichever server connection is
            # free: a named prepared statement made on one is missing on the next, or is
            # another node's under the same name. An unnamed statement lives only until the
            # next one on its connection, inside the transaction: no cache, no names.
            args.update(
                statement_cache_size=0,
                prepared_statement_cache_size=0,
                prepared_statement_name_func=_unnamed,
            )
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            # Behind a session pooler each client connection holds a server connection: keep
            # to a fixed budget of pool_size per node (docs/operations.md has the formula).
            max_overflow=0 if pooler == "session" else pool_size,
            # No ping per checkout: it is a round trip before every transaction (about
            # 0.6 ms of a 3 ms create here). A connection the server dropped fails its
            # next statement instead; SQLAlchemy then discards every pooled connection
            # opened before, so a database restart costs one 503, not one per connection.
            pool_pre_ping=False,
            hide_parameters=True,  # error messages must not carry job payloads into logs
            connect_args=args,
        )
        sa.event.listen(engine.sync_engine, "handle_error", _read_only_is_a_disconnect)
        if pooler == "transaction":
            # A read's statements must stay on one server connection (an unnamed prepared
            # statement and its execution): only a transaction holds one behind this pooler.
            return engine, engine
        # Reads run without BEGIN and ROLLBACK, each statement on its own: at READ COMMITTED
        # every statement takes its own snapshot anyway, so the two saved round trips (of
        # three, for a one-statement lookup) change nothing a read sees. Same pool.
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")

    def listen_engine_create(self, url: URL, *, connect_args: Mapping[str, Any]) -> AsyncEngine:
        url, args = _connect_args(url, connect_args)
        # One connection, held for as long as it listens, and never handed to anyone else.
        return create_async_engine(url, poolclass=NullPool, connect_args=args)

    def error_is_unavailable(self, exc: sa_exc.DBAPIError) -> bool:
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str):
            return state.startswith(_UNAVAILABLE_STATES)
        return isinstance(exc, sa_exc.OperationalError)

    # -- statements ----------------------------------------------------------------------------

    def insert_skip_conflict(self, table: sa.Table, keys: Sequence[sa.Column[Any]]) -> sa.Insert:
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)

    def select_for_update(self, stmt: SelectT, *, skip_locked: bool = False) -> SelectT:
        return stmt.with_for_update(skip_locked=skip_locked)

    async def job_finish(
        self, conn: AsyncConnection, rows: Sequence[FinishRow], *, now: datetime
    ) -> list[Any]:
        # One array parameter per column: the statement text is the same for every batch.
        columns = zip(*rows, strict=True)
        params: dict[str, Any] = {
            name: list(c) for name, c in zip(FINISH_COLUMNS, columns, strict=True)
        }
        params.update(now=now, cancel_map=json.dumps(cancel_map()), cancel_message=CANCEL_MESSAGE)
        return list((await conn.execute(_FINISH, params)).all())

    async def attempts_close(
        self, conn: AsyncConnection, rows: Sequence[AttemptRow], *, now: datetime
    ) -> None:
        columns = zip(*rows, strict=True)
        params: dict[str, Any] = {
            name: list(c) for name, c in zip(ATTEMPT_COLUMNS, columns, strict=True)
        }
        params["now"] = now
        await conn.execute(_ATTEMPTS_CLOSE, params)

    async def clock_now(self, conn: AsyncConnection) -> datetime:
        # clock_timestamp(), not now(): now() is the time the transaction began.
        value: datetime = (await conn.execute(sa.select(sa.func.clock_timestamp()))).scalar_one()
        return value.astimezone(UTC)

    # -- locks and notifications ---------------------------------------------------------------

    async def maintenance_lock(self, conn: AsyncConnection, name: str) -> bool:
        # A transaction-level advisory lock: released by the commit, or when the node dies.
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        got = await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))
        return bool(got.scalar_one())

    async def limited_claim_lock(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LIMITED_CLAIM_LOCK_KEY)))

    async def queued_of_keys(
        self, conn: AsyncConnection, wants: Sequence[tuple[str, int]], endpoints: Sequence[str]
    ) -> list[Any]:
        if not wants:
            return []
        keys, counts = zip(*wants, strict=True)
        params = {"keys": list(keys), "counts": list(counts), "endpoints": list(endpoints)}
        return list((await conn.execute(_QUEUED_OF_KEYS, params)).all())

    def migration_lock(self, conn: Connection) -> None:
        # Nodes starting together must not migrate at the same time.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})

    async def new_jobs_notify(self, conn: AsyncConnection, payload: str = "") -> None:
        await conn.execute(sa.select(sa.func.pg_notify(NEW_JOB_CHANNEL, payload)))

    async def new_jobs_listen(
        self,
        engine: AsyncEngine,
        on_notify: Callable[[str], None],
        *,
        while_listening: Callable[[], Coroutine[Any, Any, None]] | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        """LISTEN on a connection of its own; reconnects when the link drops.

        Polling stays on as the fallback, so a missed notification only delays a job.
        """
        while True:
            try:
                async with engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection

                    closed = asyncio.Event()

                    def _callback(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                        on_notify(payload)

                    def _terminated(*_args: Any, closed: asyncio.Event = closed) -> None:
                        closed.set()

                    driver.add_termination_listener(_terminated)
                    await driver.add_listener(NEW_JOB_CHANNEL, _callback)
                    beside = None
                    if while_listening is not None:
                        beside = asyncio.create_task(
                            while_listening(), name="jobstore-listen-check"
                        )
                    try:
                        log.debug("listening on %s", NEW_JOB_CHANNEL)
                        on_notify(LIMITED_PAYLOAD)  # anything created while we were not listening
                        await closed.wait()
                        log.warning("LISTEN connection closed; reconnecting")
                    finally:
                        try:
                            if beside is not None:
                                beside.cancel()
                                await asyncio.gather(beside, return_exceptions=True)
                        finally:
                            # Never hand a connection with a listener back to a pool.
                            await conn.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.0fs", exc, check_seconds)
            await asyncio.sleep(check_seconds)

    async def read_only_reason(self, conn: AsyncConnection) -> str | None:
        row = (
            await conn.execute(
                sa.text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            )
        ).one()
        if row[0]:
            return "the server is a standby (in recovery)"
        if row[1] == "on":
            return "the server is read-only (default_transaction_read_only)"
        return None

    async def upkeep_warning(self, conn: AsyncConnection) -> str | None:
        setting = (await conn.execute(sa.text("SELECT current_setting('autovacuum')"))).scalar()
        if setting == "on":
            return None
        return (
            "autovacuum is off on this PostgreSQL server: dead rows will pile up in the jobs "
            "table and its queue index, and claims slow down as they do; turn it on, or run "
            "VACUUM (ANALYZE) jobs, job_attempts often (docs/operations.md, 'Autovacuum')"
        )


def _unnamed() -> str:
    return ""  # asyncpg's name for the unnamed prepared statement


def _connect_args(url: URL, given: Mapping[str, Any]) -> tuple[URL, dict[str, Any]]:
    """The URL without asyncpg's numeric arguments, and the connection arguments: those, as
    numbers, then the `given` ones."""
    args: dict[str, Any] = {}
    for name, kind in _NUMERIC_ARGS.items():
        if name not in url.query:
            continue
        raw = url.query[name]
        try:
            args[name] = kind(raw if isinstance(raw, str) else raw[-1])
        except ValueError:
            raise ConfigError(f"database URL: {name} must be a number, got {raw!r}") from None
    url = url.difference_update_query(args)
    args.update(given)
    return url, args


def _read_only_is_a_disconnect(ctx: sa.engine.ExceptionContext) -> None:
    """A read-only server (a standby, or a primary demoted in a failover) is treated as a lost
    connection: SQLAlchemy drops every pooled connection, and the next ones are made afresh,
    finding the new primary through a multi-host URL with target_session_attrs=read-write."""
    error: BaseException | None = ctx.original_exception
    while error is not None:
        if getattr(error, "sqlstate", None) == READ_ONLY_STATE:
            ctx.is_disconnect = True
            return
        error = error.__cause__
