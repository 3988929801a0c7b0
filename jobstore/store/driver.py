"""The seam between jobstore's SQL and one database: what SQLite and PostgreSQL do differently.

`Database` picks one driver from the URL; the repositories (`JobStore`, `CdmStore`) take it and
never ask which database they are on. `sqlite.py` and `postgres.py` implement this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobstore.store.statements import AttemptRow, FinishRow
from jobstore.store.writer_turn import WriterTurn

SelectT = TypeVar("SelectT", bound=sa.Select[Any])
# The payload of a create's NOTIFY when a new job waits for the limited claim (store/limits.py):
# it has a concurrency key, or its endpoint a global limit. Plain creates send "".
LIMITED_PAYLOAD = "limited"


class Driver(Protocol):
    """What differs between the databases jobstore runs on."""

    @property
    def can_listen(self) -> bool:
        """Whether `new_jobs_listen` can hear creates made on other nodes."""
        ...

    @property
    def prune_batch_size(self) -> int:
        """How many finished jobs one retention batch deletes: as many as the database can
        delete while other writers wait no longer than a create's commit takes."""
        ...

    @property
    def writer_turn(self) -> WriterTurn | None:
        """What a write transaction takes first, so that processes sharing the database take
        turns (SQLite, once its engines exist); None where the database needs nothing."""
        ...

    # -- connections ---------------------------------------------------------------------------

    def url_normalize(self, url: URL) -> URL:
        """The URL with its async driver; ConfigError when it cannot work."""
        ...

    def engines_create(
        self, url: URL, *, pool_size: int, pooler: str, connect_args: Mapping[str, Any]
    ) -> tuple[AsyncEngine, AsyncEngine]:
        """(writer, reader); one pool for both when the database allows concurrent writers
        (the reader may run its statements without a transaction around them). `pooler`
        (none, session, transaction) says what sits between jobstore and the server;
        `connect_args` go to the database driver as they are. ConfigError where unsupported."""
        ...

    def listen_engine_create(self, url: URL, *, connect_args: Mapping[str, Any]) -> AsyncEngine:
        """An engine for the LISTEN connection alone, straight to the server (no pooler)."""
        ...

    def error_is_unavailable(self, exc: sa_exc.DBAPIError) -> bool:
        """An error of the database's reachability, not of the statement."""
        ...

    # -- statements ----------------------------------------------------------------------------

    def insert_skip_conflict(self, table: sa.Table, keys: Sequence[sa.Column[Any]]) -> sa.Insert:
        """INSERT ... ON CONFLICT (keys) DO NOTHING."""
        ...

    def select_for_update(self, stmt: SelectT, *, skip_locked: bool = False) -> SelectT:
        """The rows `stmt` reads, held until the transaction ends (where rows can be locked)."""
        ...

    @property
    def claim(self) -> sa.Executable:
        """UPDATE the first `:limit` queued jobs of `:endpoints` (priority, then age) to
        running, owned by `:node` since `:now` until `:lease_until`, RETURNING the claimed
        rows; it opens their attempts in `job_attempts` too. Built once: only binds change."""
        ...

    @property
    def claim_with_upstream(self) -> sa.Executable:
        """Like `claim`, for the queued jobs of `:endpoints` and those run on an upstream
        (`upstream` set: endpoints nobody declared, for a node with a Kinetica upstream)."""
        ...

    @property
    def claim_ids(self) -> sa.Executable:
        """Like `claim`, for the queued jobs whose ids are `:ids` (a limited claim's picks)."""
        ...

    async def queued_of_keys(
        self, conn: AsyncConnection, wants: Sequence[tuple[str, int]], endpoints: Sequence[str]
    ) -> list[Any]:
        """For each (key, n) in `wants`, the first n queued jobs with that concurrency key
        among `endpoints`, in claim order: rows (job_id, endpoint, concurrency_key, priority)."""
        ...

    async def job_finish(
        self, conn: AsyncConnection, rows: Sequence[FinishRow], *, now: datetime
    ) -> list[Any]:
        """End the jobs of `rows` in one UPDATE, fenced by (job_id, attempt, running), and
        close their attempts (closed `cancelled` where a cancel request won). Answers a row
        (job_id, status, remove_on_complete) per job whose attempt still held it."""
        ...

    async def attempts_close(
        self, conn: AsyncConnection, rows: Sequence[AttemptRow], *, now: datetime
    ) -> None:
        """Close the attempts in `rows` (job_id, attempt, outcome, error) that are still open."""
        ...

    async def clock_now(self, conn: AsyncConnection) -> datetime:
        """The database's own time (aware, UTC): every node's common clock."""
        ...

    # -- locks and notifications ---------------------------------------------------------------

    async def maintenance_lock(self, conn: AsyncConnection, name: str) -> bool:
        """Try to become the one node doing `name` until this transaction ends."""
        ...

    async def limited_claim_lock(self, conn: AsyncConnection) -> None:
        """Wait until no other node is making a limited claim; held until this transaction
        ends (what makes counting running jobs and claiming more one step)."""
        ...

    def migration_lock(self, conn: Connection) -> None:
        """Wait until no other node migrates; held until this transaction ends."""
        ...

    async def new_jobs_notify(self, conn: AsyncConnection, payload: str = "") -> None:
        """Tell listening nodes, when this transaction commits, that jobs were created (or,
        with a `payload` of store/listen.py's, check that they hear us)."""
        ...

    async def new_jobs_listen(
        self,
        engine: AsyncEngine,
        on_notify: Callable[[str], None],
        *,
        while_listening: Callable[[], Coroutine[Any, Any, None]] | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        """Call `on_notify(payload)` for every notification until cancelled, and run
        `while_listening` for as long as each LISTEN connection lives (it checks that
        notifications arrive); returns at once when the database cannot listen."""
        ...

    async def read_only_reason(self, conn: AsyncConnection) -> str | None:
        """Why this server cannot take writes now (a standby, a read-only default); None when
        it can."""
        ...

    async def upkeep_warning(self, conn: AsyncConnection) -> str | None:
        """What in the server's settings will slow jobstore down as jobs come and go (no
        autovacuum); None when nothing does."""
        ...
