"""Shared fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

PostgreSQL comes from JOBSTORE_TEST_POSTGRES_URL (an admin connection, default the local server
at 127.0.0.1:5432). Each test gets its own database, cloned from a template migrated once per
session. Without a server the PostgreSQL cases skip, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from jobstore.domain.clock import ManualClock
from jobstore.store import Database, JobStore, migrate_to_head

PG_ADMIN_URL = os.environ.get(
    "JOBSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = bool(os.environ.get("CI"))


def _pg_dsn(database: str | None = None) -> str:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(_pg_dsn(), timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN; skips (or fails under CI) when there is no PostgreSQL."""
    why = _pg_reachable()
    if why is not None:
        message = f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({why})"
        if IN_CI:
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    return _pg_dsn()


def new_pg_database(template: str | None = None) -> str:
    """Create a database (optionally from a template) and return its URL."""
    name = f"jobstore_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"{clause}'))
    return _pg_dsn(name)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    url = new_pg_database()
    db = Database(url, pool_size=1)

    async def migrate() -> None:
        await migrate_to_head(db)
        await db.dispose()

    asyncio.run(migrate())
    yield str(make_url(url).database)
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}", pool_size=1)

    async def migrate() -> None:
        await migrate_to_head(db)
        await db.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, migrated database of the parametrized dialect."""
    if dialect == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "jobstore.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    url = new_pg_database(template=request.getfixturevalue("pg_template"))
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def empty_database_url(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """URL of a fresh database with no schema at all."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_server")
    url = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=4)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test says so."""
    return ManualClock()


@pytest.fixture
def store(db: Database) -> JobStore:
    return db.jobs
