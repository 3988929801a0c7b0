"""PostgreSQL test databases: the admin connection, and databases created and dropped by name.

PostgreSQL comes from JOBSTORE_TEST_POSTGRES_URL (an admin connection, default the local server
at 127.0.0.1:5432). The conftest's fixtures build on these; a module that needs a database of
its own for longer than one test (a filled one, say) calls `new_pg_database` itself.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from jobstore.store import Database

PG_ADMIN_URL = os.environ.get(
    "JOBSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pg_dsn(database: str | None = None) -> str:
    """The admin URL as an asyncpg DSN, optionally for another database on the same server."""
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def pg_admin(*statements: str) -> None:
    """Run statements on the admin connection, one by one, outside any transaction."""
    conn = await asyncpg.connect(pg_dsn(), timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def pg_unreachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        asyncio.run(pg_admin("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def new_pg_database(template: str | None = None) -> str:
    """Create a database (optionally from a template) and return its URL."""
    name = f"jobstore_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"{clause}'))
    return pg_dsn(name)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def opened(url: str, pool_size: int = 2) -> AsyncIterator[Database]:
    """A Database on `url` (either dialect), disposed of afterwards."""
    db = Database(url, pool_size=pool_size)
    try:
        yield db
    finally:
        await db.dispose()
