"""Run Alembic programmatically on a jobstore database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from jobstore.domain.errors import ConfigError
from jobstore.store.database import Database
from jobstore.store.driver import Driver


def _migrations_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError("jobstore's migrations folder is missing from this installation")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover
        raise ConfigError("no migrations found")
    return head


def _upgrade(conn: Connection, driver: Driver, revision: str) -> None:
    driver.migration_lock(conn)  # nodes starting together must not migrate at the same time
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _downgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def migrate_to_head(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(_upgrade, db.driver, "head")


async def downgrade_to(db: Database, revision: str) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(_downgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.reading() as conn:
        return await conn.run_sync(_current)
