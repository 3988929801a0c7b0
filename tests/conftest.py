"""Shared fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

PostgreSQL comes from JOBSTORE_TEST_POSTGRES_URL (an admin connection, default the local server
at 127.0.0.1:5432). Each test gets its own database, cloned from a template migrated once per
session. Without a server the PostgreSQL cases skip, except under CI, where they fail.

Every other JOBSTORE_* variable (all but the suite's own two, see TEST_VARIABLES) is removed for
the whole session by `pytest_configure`, so a developer's exported settings cannot change what
the tests see.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from jobstore.domain.clock import ManualClock
from jobstore.store import Database, JobStore, migrate_to_head
from tests.support.databases import (
    PG_ADMIN_URL,
    drop_pg_database,
    new_pg_database,
    pg_dsn,
    pg_unreachable,
)

IN_CI = bool(os.environ.get("CI"))
# The suite's own knobs, read by the tests themselves; jobstore reads neither.
TEST_VARIABLES = frozenset({"JOBSTORE_TEST_POSTGRES_URL", "JOBSTORE_TEST_CHROMIUM"})
_scrubbed: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Remove every JOBSTORE_* setting before any test module is imported."""
    for name in [n for n in os.environ if n.startswith("JOBSTORE_")]:
        if name not in TEST_VARIABLES:
            _scrubbed[name] = os.environ.pop(name)


# Tests that start clusters, poolers or nodes run first: on two workers (make test), the
# suite's last minutes are then short tests that even out, not one long test on one worker
# while the other idles. Order within each group is kept.
_LONG_FIRST = ("chaos", "topologies", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (n for n, mark in enumerate(_LONG_FIRST) if item.get_closest_marker(mark)),
            len(_LONG_FIRST),
        )

    items.sort(key=rank)


def pytest_unconfigure(config: pytest.Config) -> None:
    os.environ.update(_scrubbed)
    _scrubbed.clear()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN; skips (or fails under CI) when there is no PostgreSQL."""
    why = pg_unreachable()
    if why is not None:
        message = f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({why})"
        if IN_CI:
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    return pg_dsn()


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
