"""pgqueuer on the shared figures (see _common.py). Runs in benchmarks/.venvs/pgqueuer.

Best setting on two cores (the issue's own sweep): two worker processes, dequeue batches of
100, no concurrency limit. Finished jobs leave the queue table; `pgqueuer_log` keeps one row
per state change ('queued', 'picked', 'successful'), each stamped `now()` by PostgreSQL.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import _common
import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

ENTRYPOINT = "noop"
BULK = 5_000


class PgqueuerPeer:
    name = "pgqueuer"
    version = version("pgqueuer")

    def __init__(self, options: _common.Options) -> None:
        self.options = options
        self.batch_size = int(options.extra.get("batch_size", 100))
        self.conn: asyncpg.Connection | None = None
        self.queries: Queries | None = None

    def settings(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "driver": "asyncpg", "durability": "durable"}

    async def open(self, dsn: str) -> None:
        self.conn = await asyncpg.connect(dsn)
        self.queries = Queries(AsyncpgDriver(self.conn))
        if self.options.role == "main":
            await self.queries.install()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def enqueue_one(self) -> None:
        assert self.queries is not None
        await self.queries.enqueue(ENTRYPOINT, None)

    async def enqueue_bulk(self, count: int) -> None:
        assert self.queries is not None
        for start in range(0, count, BULK):
            n = min(BULK, count - start)
            await self.queries.enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)

    async def unfinished(self) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval("SELECT count(*) FROM pgqueuer"))

    async def drain_window(self) -> tuple[int, float]:
        assert self.conn is not None
        row = await self.conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'successful') AS finished,
                      extract(epoch FROM max(created) FILTER (WHERE status = 'successful')
                                       - min(created) FILTER (WHERE status = 'picked')) AS span
               FROM pgqueuer_log"""
        )
        return int(row["finished"]), float(row["span"] or 0.0)

    async def start_latencies_ms(self) -> list[float]:
        assert self.conn is not None
        rows = await self.conn.fetch(
            """SELECT extract(epoch FROM p.created - q.created) * 1000 AS ms
               FROM pgqueuer_log q
               JOIN pgqueuer_log p ON p.job_id = q.job_id AND p.status = 'picked'
               WHERE q.status = 'queued'"""
        )
        return [float(r["ms"]) for r in rows]

    async def work(self, stop: asyncio.Event) -> None:
        assert self.queries is not None
        qm = QueueManager(self.queries)

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            return None

        async def stopper() -> None:
            await stop.wait()
            qm.shutdown.set()

        watcher = asyncio.create_task(stopper())
        try:
            await qm.run(batch_size=self.batch_size)
        finally:
            watcher.cancel()


if __name__ == "__main__":
    _common.main(PgqueuerPeer, best_procs=2)
