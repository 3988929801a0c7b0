"""Run Alembic programmatically on a jobstore database.

`migrate_to_head` creates and upgrades; `require_schema` is for the commands that must work on
an existing jobstore database only (`users`, `tokens`, `db current`, `db downgrade`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from jobstore.domain.errors import ConfigError, DatabaseUnusable
from jobstore.store.database import Database
from jobstore.store.diagnose import UPGRADE_FIRST, describe_connect_error
from jobstore.store.driver import Driver

log = logging.getLogger(__name__)


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


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover
        raise ConfigError("no migrations found")
    return head


def _upgrade(conn: Connection, driver: Driver, revision: str) -> None:
    driver.migration_lock(conn)  # nodes starting together must not migrate at the same time
    before = _current(conn)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    after = _current(conn)
    if after != before:
        # One line instead of Alembic's own (the CLI keeps those below warnings).
        log.info("database schema migrated from %s to %s", before or "nothing", after)


def _downgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def migrate_to_head(db: Database) -> None:
    """Create or upgrade the schema; DatabaseUnusable when the database cannot be reached or
    refuses (a missing privilege, a read-only server or file)."""
    try:
        async with db.transaction() as conn:
            await conn.run_sync(_upgrade, db.driver, "head")
    except Exception as exc:
        unusable = describe_connect_error(exc, db.url)
        if unusable is None:
            raise
        raise unusable from exc


async def require_schema(db: Database, *, at_head: bool) -> str:
    """The schema revision of an existing jobstore database; creates and migrates nothing.

    DatabaseUnusable when the database cannot be reached, is a SQLite file that does not exist,
    has no jobstore schema or (with `at_head`) is not at this jobstore's newest revision.
    """
    await db.check_reachable(must_exist=True)
    try:
        revision = await current_revision(db)
    except Exception as exc:
        unusable = describe_connect_error(exc, db.url)
        if unusable is None:
            raise
        raise unusable from exc
    shown = db.shown_url
    if revision is None:
        raise DatabaseUnusable(f"database {shown}: no jobstore schema", UPGRADE_FIRST)
    if at_head:
        head = head_revision()
        if revision not in {script.revision for script in _scripts().walk_revisions()}:
            raise DatabaseUnusable(
                f"database {shown}: schema revision {revision} is newer than this jobstore's "
                f"{head}",
                "use a newer jobstore",
            )
        if revision != head:
            raise DatabaseUnusable(
                f"database {shown}: schema revision {revision}, this jobstore needs {head}",
                UPGRADE_FIRST,
            )
    return revision


async def downgrade_to(db: Database, revision: str) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(_downgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.reading() as conn:
        return await conn.run_sync(_current)
