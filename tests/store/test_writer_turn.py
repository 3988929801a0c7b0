"""SQLite's writer turn (store/writer_turn.py): processes sharing a database take turns to write.

Two `Database` objects on one file stand for two processes: each opens the lock file on its
own, and `flock` locks belong to an open file, so they exclude each other as two processes
would. PostgreSQL takes no turn (row locks); its transactions are covered everywhere else.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from jobstore.domain.errors import StoreUnavailable
from jobstore.store import Database
from jobstore.store.writer_turn import LOCK_SUFFIX, WriterTurn


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "jobstore.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
async def two_databases(sqlite_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    first = Database(f"sqlite:///{sqlite_path}", pool_size=1)
    second = Database(f"sqlite:///{sqlite_path}", pool_size=1)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


def turn_is_free(database: Path) -> bool:
    """Whether another open file could take the turn now."""
    fd = os.open(f"{database}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock taken here
    return True


async def test_a_write_transaction_holds_the_turn_until_after_its_commit(
    two_databases: tuple[Database, Database], sqlite_path: Path
) -> None:
    first, _ = two_databases
    async with first.transaction() as conn:
        await conn.execute(text("UPDATE jobs SET progress = 1 WHERE job_id = 0"))
        assert not turn_is_free(sqlite_path)
    assert turn_is_free(sqlite_path)
    async with first.reading() as conn:  # reads take no turn
        await conn.execute(text("SELECT count(*) FROM jobs"))
        assert turn_is_free(sqlite_path)


async def test_a_second_process_writes_the_moment_the_first_commits(
    two_databases: tuple[Database, Database],
) -> None:
    first, second = two_databases
    order: list[str] = []
    first_holds = asyncio.Event()

    async def hold() -> None:
        async with first.transaction() as conn:
            await conn.execute(text("CREATE TABLE turns (who TEXT)"))
            first_holds.set()
            await asyncio.sleep(0.3)
            await conn.execute(text("INSERT INTO turns VALUES ('first')"))
            order.append("first committing")

    async def follow() -> float:
        await first_holds.wait()
        began = time.monotonic()
        async with second.transaction() as conn:
            order.append("second began")
            seen = (await conn.execute(text("SELECT who FROM turns"))).scalars().all()
            assert seen == ["first"]  # it began after the first's commit, so it sees it
            await conn.execute(text("INSERT INTO turns VALUES ('second')"))
        return time.monotonic() - began

    _, waited = await asyncio.gather(hold(), follow())
    assert order == ["first committing", "second began"]
    assert waited >= 0.2  # it did wait for the turn


async def test_a_turn_not_given_in_time_is_the_database_out_of_reach(
    two_databases: tuple[Database, Database], sqlite_path: Path
) -> None:
    first, _ = two_databases
    blocker = WriterTurn(sqlite_path, timeout=1)
    turn = first.driver.writer_turn
    assert turn is not None
    turn.timeout = 0.2
    async with blocker():
        with pytest.raises(StoreUnavailable):
            async with first.transaction():
                pass  # pragma: no cover - the turn never comes
    # The waiter that gave up takes the turn once it is free and hands it straight back.
    for _ in range(50):
        if turn_is_free(sqlite_path):
            break
        await asyncio.sleep(0.02)
    assert turn_is_free(sqlite_path)
    async with first.transaction() as conn:  # and the next transaction gets it as usual
        await conn.execute(text("UPDATE jobs SET progress = 1 WHERE job_id = 0"))
    blocker.close()


async def test_a_turn_waits_in_its_own_thread_not_on_the_event_loop(
    sqlite_path: Path,
) -> None:
    """While one turn waits, the event loop keeps running other work."""
    holder, waiter = WriterTurn(sqlite_path, 5), WriterTurn(sqlite_path, 5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    try:
        async with holder():
            waiting = asyncio.create_task(waiter().__aenter__())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert ticks >= 10
        await asyncio.wait_for(waiting, 2)
    finally:
        ticking.cancel()
        holder.close()
        waiter.close()
