"""procrastinate on the shared figures (see _common.py). Runs in benchmarks/.venvs/procrastinate.

Best setting found on two cores: two worker processes with `concurrency` 4 each, LISTEN/NOTIFY
on, finished jobs kept (`delete_jobs="never"`, the default), psycopg's C implementation.
`procrastinate_events` holds one row per state change ('deferred', 'started', 'succeeded'),
stamped `now()` by PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib.metadata import version
from typing import Any

import _common
import psycopg
from procrastinate import App, PsycopgConnector

BULK = 5_000


class ProcrastinatePeer:
    name = "procrastinate"
    version = version("procrastinate")

    def __init__(self, options: _common.Options) -> None:
        self.options = options
        self.concurrency = int(options.extra.get("concurrency", 4))
        self.delete_jobs = str(options.extra.get("delete_jobs", "never"))
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.app = App(
            connector=PsycopgConnector(
                conninfo=options.dsn, min_size=1, max_size=self.concurrency + 4
            )
        )

        @self.app.task(name="noop")
        async def noop() -> None:
            return None

        self.noop = noop

    def settings(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "delete_jobs": self.delete_jobs,
            "listen_notify": True,
            "psycopg": psycopg.pq.__impl__,
        }

    async def open(self, dsn: str) -> None:
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        await self.app.open_async()
        self.conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        if self.options.role == "main":
            await self.app.schema_manager.apply_schema_async()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        await self.app.close_async()

    async def enqueue_one(self) -> None:
        await self.noop.defer_async()

    async def enqueue_bulk(self, count: int) -> None:
        for start in range(0, count, BULK):
            await self.noop.batch_defer_async(*({} for _ in range(min(BULK, count - start))))

    async def _one(self, sql: str) -> tuple[Any, ...]:
        assert self.conn is not None
        cur = await self.conn.execute(sql)  # type: ignore[arg-type]
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)

    async def unfinished(self) -> int:
        (count,) = await self._one(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )
        return int(count)

    async def drain_window(self) -> tuple[int, float]:
        finished, span = await self._one(
            """SELECT count(*) FILTER (WHERE type = 'succeeded'),
                      extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')
                                       - min(at) FILTER (WHERE type = 'started'))
               FROM procrastinate_events"""
        )
        return int(finished), float(span or 0.0)

    async def start_latencies_ms(self) -> list[float]:
        assert self.conn is not None
        cur = await self.conn.execute(
            """SELECT extract(epoch FROM s.at - d.at) * 1000
               FROM procrastinate_events d
               JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started'
               WHERE d.type = 'deferred'"""
        )
        return [float(r[0]) for r in await cur.fetchall()]

    async def work(self, stop: asyncio.Event) -> None:
        worker = asyncio.create_task(
            self.app.run_worker_async(
                concurrency=self.concurrency,
                wait=True,
                listen_notify=True,
                delete_jobs=self.delete_jobs,
                install_signal_handlers=False,
            )
        )
        await stop.wait()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


if __name__ == "__main__":
    _common.main(ProcrastinatePeer, best_procs=2)
