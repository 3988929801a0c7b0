"""Why a database cannot be used, in one line: which database, the cause, what to do.

Start-up (`serve`, `worker`, the `db`, `users` and `tokens` commands) turns a failure to reach or
use the database into `DatabaseUnusable` with such a line; the CLI prints it instead of a
traceback. URLs are shown as `display_url` renders them: never with a password.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from jobstore.domain.errors import DatabaseUnusable

UPGRADE_FIRST = "run jobstore db upgrade first"  # creates the database and its schema


def display_url(url: URL) -> str:
    """The URL as shown to people: no password, no `+driver`, a SQLite path made absolute."""
    shown = url.set(drivername=url.get_backend_name())
    if shown.get_backend_name() == "sqlite" and shown.database:
        shown = shown.set(database=os.path.abspath(shown.database))
    return shown.render_as_string(hide_password=True)


def missing_file(url: URL) -> DatabaseUnusable | None:
    """For commands that must not create a database: a SQLite file that does not exist."""
    if url.get_backend_name() != "sqlite" or not url.database or Path(url.database).exists():
        return None
    return DatabaseUnusable(f"database {display_url(url)}: no such file", UPGRADE_FIRST)


def describe_connect_error(exc: BaseException, url: URL) -> DatabaseUnusable | None:
    """The one-line reason `exc` kept jobstore from reaching or using the database at `url`;
    None when `exc` says nothing of the kind (a bug is not hidden behind a tidy message)."""
    cause = _cause(exc)
    if cause is None:
        return None
    if url.get_backend_name() == "sqlite":
        return _sqlite(cause, display_url(url))
    return _postgres(cause, url)


def _cause(exc: BaseException) -> BaseException | None:
    """The driver's error or the network's, under SQLAlchemy's and jobstore's wrappers."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa_exc.DBAPIError) and seen.orig is not None:
            return seen.orig
        if isinstance(seen, OSError | TimeoutError | sa_exc.TimeoutError):
            return seen
        seen = seen.__cause__
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- PostgreSQL --------------------------------------------------------------------------------

# SQLSTATE prefix -> (what to do, whether waiting may help). The first match wins.
_PG_STATES: tuple[tuple[str, str, bool], ...] = (
    ("3D000", "create it with createdb{createdb}", True),
    ("28", "check the user and password in the database URL (and pg_hba.conf)", False),
    ("42501", "migrate as the database's owner, or GRANT CREATE ON SCHEMA public TO {user}", False),
    ("25006", "this server is read-only (a standby?); use the primary's URL", False),
    ("53300", "too many clients: raise max_connections, or lower --pool-size", True),
    ("57P03", "PostgreSQL is starting or stopping; try again shortly", True),
    ("57P", "PostgreSQL is shutting down; try again when it is back", True),
    ("53", "the server is out of resources; try again shortly", True),
    ("08", "is PostgreSQL running at {where}?", True),
)


def _postgres(cause: BaseException, url: URL) -> DatabaseUnusable | None:
    shown = display_url(url)
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    if isinstance(cause, TimeoutError | sa_exc.TimeoutError):
        return DatabaseUnusable(
            f"database {shown}: no answer from {where}",
            "is the host right, and the port open?",
            retryable=True,
        )
    if isinstance(cause, socket.gaierror):
        return DatabaseUnusable(
            f"database {shown}: unknown host {url.host!r}",
            "check the host in the database URL",
            retryable=True,
        )
    if isinstance(cause, OSError):
        reason = os.strerror(cause.errno).lower() if cause.errno else _first_line(cause)
        return DatabaseUnusable(
            f"database {shown}: cannot connect to {where} ({reason})",
            "is PostgreSQL running there?",
            retryable=True,
        )
    state = getattr(cause, "sqlstate", None)
    if not isinstance(state, str):
        return None
    for prefix, hint, retryable in _PG_STATES:
        if state.startswith(prefix):
            createdb = f" -h {url.host or 'localhost'} -p {url.port or 5432}"
            createdb += f" -U {url.username}" if url.username else ""
            createdb += f" {url.database}"
            what = hint.format(createdb=createdb, user=url.username or "<user>", where=where)
            return DatabaseUnusable(
                f"database {shown}: {_first_line(cause)}", what, retryable=retryable
            )
    return None


# -- SQLite ------------------------------------------------------------------------------------

# sqlite3's error name -> (what it means, what to do, whether waiting may help).
_SQLITE_ERRORS: tuple[tuple[str, str, str, bool], ...] = (
    ("SQLITE_CANTOPEN", "cannot open the file", "check the path and its permissions", False),
    ("SQLITE_NOTADB", "not a SQLite database", "check the path in the database URL", False),
    ("SQLITE_READONLY", "read-only", "check the permissions of the file and its folder", False),
    ("SQLITE_FULL", "the disk is full", "free some space", False),
    ("SQLITE_CORRUPT", "the file is corrupt", "restore it from a backup", False),
    ("SQLITE_IOERR", "disk I/O error", "check the disk", False),
    ("SQLITE_BUSY", "locked by another process", "try again shortly", True),
    ("SQLITE_LOCKED", "locked by another connection", "try again shortly", True),
)


def _sqlite(cause: BaseException, shown: str) -> DatabaseUnusable | None:
    name = getattr(cause, "sqlite_errorname", None)
    if not isinstance(name, str):
        return None
    for prefix, meaning, what, retryable in _SQLITE_ERRORS:
        if name.startswith(prefix):
            return DatabaseUnusable(
                f"database {shown}: {meaning} ({_first_line(cause)})", what, retryable=retryable
            )
    return None
