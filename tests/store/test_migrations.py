"""Alembic owns the schema: upgrading an empty database gives exactly the metadata."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from jobstore.store import Database, migrate_to_head
from jobstore.store.migrate import alembic_config, current_revision, downgrade_to, head_revision
from jobstore.store.tables import metadata


def _diff(conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def test_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


async def test_upgrade_from_empty_matches_metadata(empty_database_url: str) -> None:
    db = Database(empty_database_url, pool_size=1)
    try:
        assert await current_revision(db) is None
        await migrate_to_head(db)
        assert await current_revision(db) == head_revision()
        async with db.reading() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(_tables) >= {"jobs", "job_tombstones"}
    finally:
        await db.dispose()


async def test_downgrade_and_upgrade_round_trip(empty_database_url: str) -> None:
    db = Database(empty_database_url, pool_size=1)
    try:
        await migrate_to_head(db)
        await downgrade_to(db, "base")
        async with db.reading() as conn:
            assert await conn.run_sync(_tables) == {"alembic_version"}
        assert await current_revision(db) is None
        await migrate_to_head(db)
        async with db.reading() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await db.dispose()


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    try:
        await migrate_to_head(db)
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()
