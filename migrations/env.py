"""Alembic environment: metadata from the package, URL from settings or a connection handed in."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from jobstore.store.database import Database
from jobstore.store.tables import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying tables
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get(
        "JOBSTORE_DATABASE_URL", "sqlite:///jobstore.db"
    )


async def _run_online() -> None:
    db = Database(_url())
    try:
        async with db.transaction() as conn:
            await conn.run_sync(_run)
    finally:
        await db.dispose()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    _configure(url=str(Database(_url()).url), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online())
