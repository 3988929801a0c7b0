"""Group commit: concurrent small writes share one transaction.

Each caller is answered only after the commit that holds its write, so durability is the same
as one transaction per write, but a busy node pays one commit (one fsync) per batch instead of
one per write. Nothing waits on purpose: writes that arrive while a batch commits form the next
batch, so an idle node commits a lone write at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.errors import StoreUnavailable
from jobstore.store.database import Database

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

# Writes a whole batch in the caller's transaction; one result per item, in order.
WriteMany = Callable[[AsyncConnection, list[T]], Awaitable[list[R]]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        db: Database,
        write_many: WriteMany[T, R],
        *,
        max_batch: int = 256,
    ) -> None:
        self._db = db
        self._write_many = write_many
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` in the next batch; returns once that batch is committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="jobstore-group-commit")
        return await future

    async def drain(self) -> None:
        """Wait until every submitted write is committed (or failed)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: len(batch)]
            try:
                await self._commit(batch)
            except StoreUnavailable as exc:
                _fail(batch, exc)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                # One write broke the shared transaction: redo them one by one so only the
                # faulty one fails.
                log.warning("a batch of %d writes failed (%s); retrying singly", len(batch), exc)
                for entry in batch:
                    try:
                        await self._commit([entry])
                    except Exception as single:
                        _fail([entry], single)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        async with self._db.transaction() as conn:
            results = await self._write_many(conn, [item for item, _ in batch])
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone away
                future.set_result(result)


def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
