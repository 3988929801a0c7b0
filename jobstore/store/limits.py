"""Concurrency limits in SQL: the named limits, and the limited claim.

The plain claim (runs.py) takes only jobs without a concurrency key, of endpoints without a
global limit. Everything else goes through `job_claim_limited`, which counts running jobs and
claims more as one step: on PostgreSQL under a transaction-level advisory lock that every
node's limited claim takes (so two nodes cannot both see a free slot and both fill it); on
SQLite under the transaction's write lock. The counts come from the `jobs` rows themselves,
so they hold through restarts and rescues: a job counts while its row says `running`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.limits import Candidate, EndpointLimits, Limits, Running, pick
from jobstore.domain.models import Claimed
from jobstore.store.driver import Driver
from jobstore.store.statements import HAS_NO_KEY, IS_QUEUED, IS_RUNNING, claimed_from_row
from jobstore.store.tables import concurrency_limits, jobs

# The most distinct keys with queued jobs one limited claim looks at (in key order).
MAX_KEYS = 1000

# The keys of queued jobs, one index probe per key (a loose index scan of
# ix_jobs_queued_keyed) rather than a read of every queued job.
_QUEUED_KEYS = sa.text(
    """WITH RECURSIVE k(key) AS (
         SELECT (SELECT min(concurrency_key) FROM jobs
                 WHERE status = 'queued' AND concurrency_key IS NOT NULL)
         UNION ALL
         SELECT (SELECT min(concurrency_key) FROM jobs
                 WHERE status = 'queued' AND concurrency_key > k.key)
         FROM k WHERE k.key IS NOT NULL
       )
       SELECT key FROM k WHERE key IS NOT NULL LIMIT :max_keys"""
)


@dataclass(frozen=True, slots=True)
class NamedLimit:
    key: str
    max_running: int
    updated_at: datetime
    updated_by: str | None = None


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """One key's jobs now: running and queued (all nodes)."""

    key: str
    running: int = 0
    queued: int = 0
    endpoints: frozenset[str] = frozenset()  # of those jobs


@dataclass(frozen=True, slots=True)
class LimitedClaim:
    claimed: list[Claimed] = field(default_factory=list)
    held_back: int = 0  # queued jobs passed over because their key or endpoint was full
    looked: bool = False  # whether there was anything to look at (keys, limited endpoints)


class LimitStore:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    # -- named limits --------------------------------------------------------------------------

    async def limit_set(
        self, conn: AsyncConnection, key: str, max_running: int, *, now: datetime, by: str | None
    ) -> None:
        values = {"max_running": max_running, "updated_at": now, "updated_by": by}
        where = concurrency_limits.c.key == key
        if (await conn.execute(sa.update(concurrency_limits).where(where).values(values))).rowcount:
            return
        insert = self.driver.insert_skip_conflict(concurrency_limits, [concurrency_limits.c.key])
        if not (await conn.execute(insert.values(key=key, **values))).rowcount:
            # Another node inserted it between our UPDATE and INSERT: ours is the later word.
            await conn.execute(sa.update(concurrency_limits).where(where).values(values))

    async def limit_get(self, conn: AsyncConnection, key: str) -> NamedLimit | None:
        row = (
            await conn.execute(sa.select(concurrency_limits).where(concurrency_limits.c.key == key))
        ).first()
        return NamedLimit(**row._mapping) if row else None

    async def limit_list(self, conn: AsyncConnection) -> list[NamedLimit]:
        rows = await conn.execute(sa.select(concurrency_limits).order_by(concurrency_limits.c.key))
        return [NamedLimit(**r._mapping) for r in rows]

    async def limit_delete(self, conn: AsyncConnection, key: str) -> bool:
        done = await conn.execute(
            sa.delete(concurrency_limits).where(concurrency_limits.c.key == key)
        )
        return bool(done.rowcount)

    async def key_usage(self, conn: AsyncConnection) -> list[KeyUsage]:
        """Running and queued jobs per key, for keys that have any (by key)."""
        stmt = (
            sa.select(jobs.c.concurrency_key, jobs.c.endpoint, jobs.c.status, sa.func.count())
            .where(jobs.c.concurrency_key.is_not(None), jobs.c.status.in_(["queued", "running"]))
            .group_by(jobs.c.concurrency_key, jobs.c.endpoint, jobs.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        endpoints: dict[str, set[str]] = {}
        for key, endpoint, status, count in await conn.execute(stmt):
            per_status = counts.setdefault(key, {})
            per_status[status] = per_status.get(status, 0) + count
            endpoints.setdefault(key, set()).add(endpoint)
        return [
            KeyUsage(key, c.get("running", 0), c.get("queued", 0), frozenset(endpoints[key]))
            for key, c in sorted(counts.items())
        ]

    # -- the limited claim ---------------------------------------------------------------------

    async def job_claim_limited(
        self,
        conn: AsyncConnection,
        *,
        node: str,
        endpoints: Mapping[str, EndpointLimits],
        limit: int,
        now: datetime,
        lease_until: datetime,
    ) -> LimitedClaim:
        """Claim up to `limit` jobs that carry a concurrency key, or belong to an endpoint with
        a global limit, among `endpoints`, keeping every limit and serving keys fairly."""
        if limit <= 0 or not endpoints:
            return LimitedClaim()
        keys = list((await conn.execute(_QUEUED_KEYS, {"max_keys": MAX_KEYS})).scalars())
        capped = [name for name, e in endpoints.items() if e.global_limit is not None]
        if not keys and not capped:
            return LimitedClaim()
        await self.driver.limited_claim_lock(conn)
        named = await self._named(conn, keys)
        limits = Limits(named, endpoints)
        running = Running.of(await conn.execute(_RUNNING_COUNTS))
        candidates = await self._candidates(conn, keys, capped, endpoints, limit, limits, running)
        picked = pick(candidates, free=limit, running=running, limits=limits)
        held_back = picked.held_back + sum(
            1 for key in keys if limits.free_for_key(key, running) == 0
        )
        if not picked.job_ids:
            return LimitedClaim(held_back=held_back, looked=True)
        params = {"ids": picked.job_ids, "node": node, "now": now, "lease_until": lease_until}
        claimed = [claimed_from_row(r) for r in await conn.execute(self.driver.claim_ids, params)]
        claimed.sort(key=lambda c: c.job_id)
        return LimitedClaim(claimed, held_back, looked=True)

    async def _named(self, conn: AsyncConnection, keys: Sequence[str]) -> dict[str, int]:
        if not keys:
            return {}
        rows = await conn.execute(
            sa.select(concurrency_limits.c.key, concurrency_limits.c.max_running).where(
                concurrency_limits.c.key.in_(list(keys))
            )
        )
        return {key: max_running for key, max_running in rows}

    async def _candidates(
        self,
        conn: AsyncConnection,
        keys: Sequence[str],
        capped: Sequence[str],
        endpoints: Mapping[str, EndpointLimits],
        limit: int,
        limits: Limits,
        running: Running,
    ) -> list[Candidate]:
        """Each key's first queued jobs (no more than it may start), and the first unkeyed
        queued jobs of each endpoint with a global limit; ranked within their line."""
        wants = []
        for key in keys:
            free = limits.free_for_key(key, running)
            if free is None:
                wants.append((key, limit))
            elif free > 0:  # and one more, to see whether the limit holds any back
                wants.append((key, min(limit, free + 1)))
        lines: dict[tuple[str | None, str], list[Any]] = {}
        for row in await self.driver.queued_of_keys(conn, wants, list(endpoints)):
            lines.setdefault((row.concurrency_key, ""), []).append(row)
        for name in capped:
            room = min(limit, (limits.of_endpoint(name) or 0) - running.by_endpoint.get(name, 0))
            if room <= 0:
                continue
            stmt = (
                sa.select(jobs.c.job_id, jobs.c.endpoint, jobs.c.concurrency_key, jobs.c.priority)
                .where(IS_QUEUED, HAS_NO_KEY, jobs.c.endpoint == name)
                .order_by(jobs.c.priority.desc(), jobs.c.job_id)
                .limit(room)
            )
            lines[(None, name)] = list(await conn.execute(stmt))
        return [
            Candidate(r.job_id, r.endpoint, r.concurrency_key, r.priority, rank)
            for line in lines.values()
            for rank, r in enumerate(line)
        ]


_RUNNING_COUNTS = (
    sa.select(jobs.c.concurrency_key, jobs.c.endpoint, sa.func.count())
    .where(IS_RUNNING)
    .group_by(jobs.c.concurrency_key, jobs.c.endpoint)
)
