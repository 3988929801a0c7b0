"""How a node reaches PostgreSQL beyond its URL: pooler mode, driver arguments, the LISTEN
connection and its self-check, and the idle poll that follows from it.

Against the machine's real PostgreSQL (and SQLite where a setting must be refused); the same
settings through a real PgBouncer are in tests/topologies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.cli.node import node_for_tests
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import Encoding, JobState, Payload
from jobstore.store import Database
from jobstore.store.listen import LISTEN_CHECK_SECONDS, UNHEARD_POLL_SECONDS
from tests.support.databases import pg_admin, pg_dsn

ECHO = Payload(Encoding.JSON, text='{"n": 1}')


def with_query(url: str, **query: str) -> str:
    return make_url(url).update_query_dict(query).render_as_string(hide_password=False)


async def run_one_job(db: Database) -> JobState:
    """Create, claim, run and finish one /echo job through a node on `db`."""
    node = node_for_tests(db, node_id="options-test")
    try:
        created = await node.jobs.create_job("/echo", ECHO)
        assert await node.executor.run_once() == [created.job_id]
        job = await node.jobs.get_job(job_id=created.job_id)
        return job.status
    finally:
        await node.executor.stop()


async def wait_until(predicate: object, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if callable(predicate) and predicate():
            return True
        await asyncio.sleep(0.02)
    return False


# -- driver arguments -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_numeric_driver_arguments_in_the_url_arrive_as_numbers(database_url: str) -> None:
    # asyncpg wants ints; a URL's query is text. This used to crash at the first connection.
    url = with_query(database_url, statement_cache_size="0", command_timeout="30")
    db = Database(url)
    try:
        assert await run_one_job(db) is JobState.DONE
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("pooler", "in_a_transaction"), [("none", False), ("session", False), ("transaction", True)]
)
async def test_reads_run_outside_a_transaction_unless_a_transaction_pooler_needs_one(
    database_url: str, pooler: str, in_a_transaction: bool
) -> None:
    """BEGIN and ROLLBACK around a read are two round trips of a lookup's three, and change
    nothing it sees: at READ COMMITTED each statement takes its own snapshot. Behind a pooler
    in transaction mode a read's statements must stay on one server connection, which only a
    transaction holds. Writes are transactions everywhere."""
    db = Database(database_url, pooler=pooler)

    async def began_after_the_first_statement(conn: AsyncConnection) -> bool:
        first = (await conn.execute(sa.text("SELECT clock_timestamp()"))).scalar_one()
        await asyncio.sleep(0.02)
        began = (await conn.execute(sa.text("SELECT transaction_timestamp()"))).scalar_one()
        return bool(began > first)

    try:
        async with db.reading() as conn:
            assert await began_after_the_first_statement(conn) is not in_a_transaction
        async with db.transaction() as conn:
            assert await began_after_the_first_statement(conn) is False
    finally:
        await db.dispose()


def test_a_driver_argument_that_is_not_a_number_is_a_config_error() -> None:
    # Refused before anything connects: no server is needed.
    url = with_query("postgresql://postgres@127.0.0.1:5432/test", statement_cache_size="none")
    with pytest.raises(ConfigError, match="statement_cache_size must be a number"):
        Database(url)


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_connect_args_reach_the_driver_typed(database_url: str) -> None:
    args = {"server_settings": {"application_name": "jobstore-options-test"}}
    db = Database(database_url, connect_args=args)
    try:
        async with db.reading() as conn:
            name = (await conn.execute(sa.text("SHOW application_name"))).scalar_one()
        assert name == "jobstore-options-test"
    finally:
        await db.dispose()


def test_pooler_settings_are_for_postgresql_only(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        Database(url, pooler="transaction")
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        Database(url, connect_args={"timeout": 5})
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        Database(url, listen_url=url)
    with pytest.raises(ConfigError, match="pooler must be one of"):
        Database("postgresql://postgres@127.0.0.1/test", pooler="statement")


# -- transaction pooling without a pooler: every statement unnamed ---------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_transaction_mode_names_no_prepared_statement(database_url: str) -> None:
    db = Database(database_url, pooler="transaction")
    try:
        assert await run_one_job(db) is JobState.DONE
        async with db.reading() as conn:
            named = (
                await conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements"))
            ).scalar_one()
        # Nothing left behind on the session that a pooler would hand to someone else.
        assert named == 0
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_without_a_pooler_statements_are_prepared_and_kept(database_url: str) -> None:
    # The other side of the test above: it could fail.
    db = Database(database_url)
    try:
        assert await run_one_job(db) is JobState.DONE
        async with db.reading() as conn:
            await conn.execute(sa.text("SELECT 1"))
            named = (
                await conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements"))
            ).scalar_one()
        assert named > 0
    finally:
        await db.dispose()


# -- LISTEN and its self-check -----------------------------------------------------------------


async def a_create_wakes(db: Database, heard: list[int]) -> bool:
    """Send a create's NOTIFY through `db`'s pool; whether the listener woke within 2 s."""
    before = len(heard)
    async with db.transaction() as conn:
        await db.jobs.job_notify_created(conn)
    return await wait_until(lambda: len(heard) > before, 2.0)


@contextlib.asynccontextmanager
async def listening(db: Database) -> AsyncIterator[list[int]]:
    """`db` listening for new jobs until the block ends (then disposed); each wake-up is
    appended to the list it yields."""
    heard: list[int] = []
    task = asyncio.create_task(db.listen_for_new_jobs(lambda _limited: heard.append(1)))
    try:
        yield heard
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_a_working_listen_is_trusted_and_the_poll_stays_slow(database_url: str) -> None:
    db = Database(database_url)
    async with listening(db) as heard:
        assert db.idle_poll_seconds(1.0) == UNHEARD_POLL_SECONDS  # not checked yet
        assert await wait_until(lambda: db.hears_new_jobs, LISTEN_CHECK_SECONDS)
        assert db.idle_poll_seconds(1.0) == 1.0
        assert await a_create_wakes(db, heard)
    assert not db.hears_new_jobs  # stopped listening: no longer trusted


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_other_nodes_checks_wake_nobody_and_a_dropped_listen_is_checked_again(
    database_url: str,
) -> None:
    db = Database(database_url)
    async with listening(db) as heard:
        assert await wait_until(lambda: db.hears_new_jobs, LISTEN_CHECK_SECONDS)
        before = len(heard)
        async with db.reading() as conn:  # another node checking its own LISTEN
            await conn.execute(sa.text("SELECT pg_notify('jobstore_new_job', 'check-other')"))
            await conn.commit()
        await asyncio.sleep(0.5)
        assert len(heard) == before
        async with db.reading() as conn:  # the same way, a create: it wakes us
            await conn.execute(sa.text("SELECT pg_notify('jobstore_new_job', '')"))
            await conn.commit()
        assert await wait_until(lambda: len(heard) > before, 2.0)
        # The LISTEN connection dies (a failover, a restart): not trusted until checked again.
        async with db.reading() as conn:
            killed = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            assert killed.scalars().all() == [True]
        assert await wait_until(lambda: not db.hears_new_jobs, 2.0)
        assert await wait_until(lambda: db.hears_new_jobs, 5.0 + LISTEN_CHECK_SECONDS)


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_a_listen_that_hears_nothing_is_reported_once_and_the_poll_speeds_up(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTIFY reaches listeners of the same database only: a listen URL naming another
    # database hears nothing, as a LISTEN through a transaction pooler would.
    name = f"jobstore_test_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    db = Database(database_url, listen_url=pg_dsn(name))
    caplog.set_level(logging.WARNING, logger="jobstore.store.listen")
    try:
        async with listening(db):
            await asyncio.sleep(LISTEN_CHECK_SECONDS + 0.5)
            assert not db.hears_new_jobs
            assert db.idle_poll_seconds(1.0) == UNHEARD_POLL_SECONDS
        warnings = [r for r in caplog.records if "LISTEN hears nothing" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_a_listen_url_of_its_own_hears_creates(database_url: str) -> None:
    db = Database(database_url, pooler="transaction", listen_url=database_url)
    async with listening(db) as heard:
        assert db.can_listen
        assert await wait_until(lambda: db.hears_new_jobs, LISTEN_CHECK_SECONDS)
        assert await a_create_wakes(db, heard)


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_transaction_mode_without_a_listen_url_says_so_and_polls_fast(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(database_url, pooler="transaction")
    caplog.set_level(logging.WARNING, logger="jobstore.store.database")
    try:
        assert not db.can_listen
        # returns at once
        await asyncio.wait_for(db.listen_for_new_jobs(lambda _limited: None), 1.0)
        assert any("transaction pooler" in r.getMessage() for r in caplog.records)
        assert db.idle_poll_seconds(1.0) == UNHEARD_POLL_SECONDS
    finally:
        await db.dispose()


async def test_sqlite_keeps_its_poll(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        assert not db.can_listen
        assert db.idle_poll_seconds(1.0) == 1.0
    finally:
        await db.dispose()
