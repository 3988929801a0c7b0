"""oban (Python) on the shared figures (see _common.py). Runs in benchmarks/.venvs/oban,
which needs Python 3.12 or newer.

Best setting on two cores (the issue's own sweep): two worker processes, queue limit 200.
`oban_jobs` keeps finished jobs with `inserted_at`, `attempted_at` and `completed_at`, stamped
by PostgreSQL (UTC, without time zone).
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

import _common
from oban import Job, Oban, worker
from oban.schema import install

BULK = 5_000
QUEUE = "default"


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        return None


class ObanPeer:
    name = "oban"
    version = version("oban")

    def __init__(self, options: _common.Options) -> None:
        self.options = options
        self.limit = int(options.extra.get("limit", 200))
        self.pool: Any = None
        self.oban: Oban | None = None

    def settings(self) -> dict[str, Any]:
        return {"limit": self.limit, "driver": "psycopg"}

    async def open(self, dsn: str) -> None:
        logging.getLogger("oban").setLevel(logging.WARNING)
        self.pool = await Oban.create_pool(dsn, min_size=1, max_size=10)
        if self.options.role == "main":
            await install(self.pool)
            self.oban = Oban(pool=self.pool)  # client mode: enqueues only

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def enqueue_one(self) -> None:
        assert self.oban is not None
        await self.oban.enqueue(Noop.new({}))

    async def enqueue_bulk(self, count: int) -> None:
        assert self.oban is not None
        for start in range(0, count, BULK):
            await self.oban.enqueue_many([Noop.new({}) for _ in range(min(BULK, count - start))])

    async def _one(self, sql: str) -> tuple[Any, ...]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql)
            return tuple(await cur.fetchone())

    async def unfinished(self) -> int:
        (count,) = await self._one(
            "SELECT count(*) FROM oban_jobs"
            " WHERE state IN ('available', 'scheduled', 'executing', 'retryable')"
        )
        return int(count)

    async def drain_window(self) -> tuple[int, float]:
        finished, span = await self._one(
            """SELECT count(*) FILTER (WHERE state = 'completed'),
                      extract(epoch FROM max(completed_at) - min(attempted_at))
               FROM oban_jobs"""
        )
        return int(finished), float(span or 0.0)

    async def start_latencies_ms(self) -> list[float]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT extract(epoch FROM attempted_at - inserted_at) * 1000 FROM oban_jobs"
                " WHERE attempted_at IS NOT NULL"
            )
            return [float(r[0]) for r in await cur.fetchall()]

    async def work(self, stop: asyncio.Event) -> None:
        async with Oban(pool=self.pool, queues={QUEUE: self.limit}):
            await stop.wait()


if __name__ == "__main__":
    _common.main(ObanPeer, best_procs=2)
