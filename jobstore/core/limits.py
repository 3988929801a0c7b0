"""Named concurrency limits: set, read and remove them, and see each key's running and queued
jobs against its limit.

A named limit caps the running jobs of one concurrency key across all nodes; it wins over the
`concurrency_limit` of the key's endpoints. 0 holds all jobs of the key until it is raised.
The claim that keeps the limits is in store/limits.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from jobstore.core.jobs import JobService
from jobstore.domain.clock import Clock
from jobstore.domain.errors import BadOption, LimitNotFound
from jobstore.domain.limits import EndpointLimits
from jobstore.domain.options import concurrency_key
from jobstore.store.limits import KeyUsage, NamedLimit

# A named limit is at most this: more running jobs than any cluster has slots.
MAX_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class KeyState:
    """One key now: its limit (named, or its endpoints'; None: unlimited) and its jobs."""

    key: str
    limit: int | None
    named: bool  # whether `limit` is a named limit (else the endpoints' concurrency_limit)
    running: int
    queued: int
    updated_at: datetime | None = None


class LimitService:
    def __init__(self, jobs: JobService, clock: Clock) -> None:
        self.db = jobs.db
        self.registry = jobs.registry
        self.store = jobs.db.limits
        self.clock = clock

    async def set(self, key: str, max_running: int, *, by: str | None = None) -> NamedLimit:
        """Set (or change) the named limit of `key`; raises BadOption naming the field."""
        checked = concurrency_key(key, "key")
        if checked is None:
            raise BadOption("key", "must not be empty")
        if isinstance(max_running, bool) or not isinstance(max_running, int):
            raise BadOption("max_running", f"must be a whole number, got {max_running!r}")
        if not 0 <= max_running <= MAX_LIMIT:
            raise BadOption("max_running", f"must be from 0 to {MAX_LIMIT}, got {max_running}")
        async with self.db.transaction() as conn:
            await self.store.limit_set(conn, checked, max_running, now=self.clock.now(), by=by)
            stored = await self.store.limit_get(conn, checked)
        assert stored is not None
        return stored

    async def get(self, key: str) -> NamedLimit:
        async with self.db.reading() as conn:
            found = await self.store.limit_get(conn, key)
        if found is None:
            raise LimitNotFound(key)
        return found

    async def list(self) -> list[NamedLimit]:
        async with self.db.reading() as conn:
            return await self.store.limit_list(conn)

    async def delete(self, key: str) -> None:
        """Remove a named limit: the key falls back to its endpoints' limit (or none)."""
        async with self.db.transaction() as conn:
            if not await self.store.limit_delete(conn, key):
                raise LimitNotFound(key)

    async def keys(self) -> builtins.list[KeyState]:
        """Every key with a named limit or with running or queued jobs, by key."""
        async with self.db.reading() as conn:
            named = {n.key: n for n in await self.store.limit_list(conn)}
            usage = {u.key: u for u in await self.store.key_usage(conn)}
        declared = self.registry.limits()
        states: builtins.list[KeyState] = []
        for key in sorted(named.keys() | usage.keys()):
            use = usage.get(key, KeyUsage(key))
            if key in named:
                limit: int | None = named[key].max_running
            else:  # the strictest concurrency_limit among the endpoints of its jobs
                limit = _strictest(declared[e] for e in use.endpoints if e in declared)
            states.append(
                KeyState(
                    key=key,
                    limit=limit,
                    named=key in named,
                    running=use.running,
                    queued=use.queued,
                    updated_at=named[key].updated_at if key in named else None,
                )
            )
        return states


def _strictest(limits: Iterable[EndpointLimits]) -> int | None:
    per_key = [e.concurrency_limit for e in limits if e.concurrency_limit is not None]
    return min(per_key) if per_key else None
