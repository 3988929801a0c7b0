"""Database URLs: what `Database` refuses before it ever connects."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from jobstore.domain.errors import ConfigError
from jobstore.store import Database


def test_sqlite_in_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder of the SQLite database does not exist"):
        Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'jobs.db'}")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root@localhost/jobs", "unsupported database 'mysql'"),
        ("sqlite://", "not an in-memory database"),
        ("::not a url::", "invalid database URL"),
    ],
)
def test_bad_database_urls_are_config_errors(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Database(url)


async def test_the_upkeep_warning_says_when_postgresql_runs_without_autovacuum(
    db: Database,
) -> None:
    """Dead rows from claims, finishes and retention are autovacuum's to clear; without it a
    busy node's claims slow down (docs/operations.md), so a node warns at start."""
    warning = await db.upkeep_warning()
    if db.url.get_backend_name() == "sqlite":
        assert warning is None
        return
    async with db.reading() as conn:
        setting = (await conn.execute(text("SHOW autovacuum"))).scalar()
    if setting == "on":
        assert warning is None
    else:
        assert warning is not None and warning.startswith("autovacuum is off"), warning
