"""Start-up failures are one line and a documented exit status; admin commands create nothing.

Real `python -m jobstore` processes against a real PostgreSQL (JOBSTORE_TEST_POSTGRES_URL, an
admin connection, default the local server) and SQLite files in temporary folders. Processes are
started with the helpers of tests/support/e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.support.e2e import clean_env, free_port, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PG_ADMIN_URL = os.environ.get(
    "JOBSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG = urlsplit(PG_ADMIN_URL)
PG_HOST, PG_PORT, PG_USER = PG.hostname or "127.0.0.1", PG.port or 5432, PG.username
PASSWORD = "secret-pw-4711"  # must never appear in any output


def one_line(done: subprocess.CompletedProcess[str], status: int) -> str:
    """The single stderr line of a failed start, checked for what every such line must be."""
    output = f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert done.returncode == status, output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("jobstore: "), output
    assert "Traceback" not in done.stderr + done.stdout, output
    assert PASSWORD not in done.stderr + done.stdout, output
    return lines[0]


def pg_url(database: str, *, user: str | None = PG_USER, port: int = PG_PORT) -> str:
    login = f"{user}:{PASSWORD}@" if user else ""
    return f"postgresql://{login}{PG_HOST}:{port}/{database}"


def shown(url: str) -> str:
    """A URL as jobstore shows it: the password masked."""
    return url.replace(f":{PASSWORD}@", ":***@")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_admin(sql: str) -> None:
    asyncio.run(_admin(sql))


@pytest.fixture(scope="module")
def pg() -> None:
    """PostgreSQL answers; skips without it, fails under CI."""
    try:
        pg_admin("SELECT 1")
    except Exception as exc:
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({exc})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)


@pytest.fixture
def new_db_name(pg: None) -> Iterator[str]:
    """A fresh database name, dropped at the end if anything created it."""
    name = f"jobstore_startup_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- serve: one line, a documented status -------------------------------------------------------


@pytest.mark.postgres
def test_server_down(pg: None, tmp_path: Path) -> None:
    url = pg_url("jobs", port=free_port())
    done = run_cli(["serve", "--database-url", url, "--port", str(free_port())], tmp_path)
    line = one_line(done, 3)
    assert shown(url) in line, line
    assert "connection refused" in line and "is PostgreSQL running there?" in line, line


@pytest.mark.postgres
def test_missing_database(new_db_name: str, tmp_path: Path) -> None:
    url = pg_url(new_db_name)
    done = run_cli(["serve", "--database-url", url, "--port", str(free_port())], tmp_path)
    line = one_line(done, 3)
    assert shown(url) in line, line
    assert f'database "{new_db_name}" does not exist' in line, line
    assert f"create it with createdb -h {PG_HOST} -p {PG_PORT}" in line, line


@pytest.mark.postgres
def test_wrong_role(pg: None, tmp_path: Path) -> None:
    url = pg_url("postgres", user=f"nobody_{uuid.uuid4().hex[:8]}")
    done = run_cli(["serve", "--database-url", url, "--port", str(free_port())], tmp_path)
    line = one_line(done, 3)
    assert shown(url) in line, line
    assert "check the user and password" in line, line


@pytest.mark.postgres
@pytest.mark.parametrize("migrated", [False, True], ids=["fresh", "migrated"])
def test_read_only_server(new_db_name: str, migrated: bool, tmp_path: Path) -> None:
    """A standby given by mistake (here: a database whose sessions are read-only)."""
    url = pg_url(new_db_name)
    pg_admin(f'CREATE DATABASE "{new_db_name}"')
    if migrated:
        upgraded = run_cli(["db", "upgrade", "--database-url", url], tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
    pg_admin(f'ALTER DATABASE "{new_db_name}" SET default_transaction_read_only = on')
    done = run_cli(["serve", "--database-url", url, "--port", str(free_port())], tmp_path)
    line = one_line(done, 3)
    assert shown(url) in line, line
    assert "read-only" in line and "target_session_attrs=read-write" in line, line


def test_port_in_use(tmp_path: Path) -> None:
    database = tmp_path / "jobstore.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            ["serve", "--database-url", f"sqlite:///{database}", "--port", str(port)], tmp_path
        )
    line = one_line(done, 4)
    assert f"127.0.0.1:{port}" in line and "address already in use" in line, line
    assert "pick another --port" in line, line
    assert "startup complete" not in done.stdout + done.stderr
    assert not database.exists(), "the port is checked before the database is touched"


# -- --wait-for-database ------------------------------------------------------------------------


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.postgres
def test_wait_for_database_until_it_is_created(new_db_name: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    argv = [
        sys.executable,
        "-m",
        "jobstore",
        "serve",
        *("--database-url", pg_url(new_db_name), "--port", str(port)),
        *("--wait-for-database", "20", "--log-level", "info"),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        time.sleep(2)
        assert proc.poll() is None, log_path.read_text()
        pg_admin(f'CREATE DATABASE "{new_db_name}"')
        deadline = time.monotonic() + 30
        while not _ready(f"http://127.0.0.1:{port}/readyz"):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    logs = log_path.read_text()
    retries = [line for line in logs.splitlines() if "trying again in" in line]
    assert retries, logs
    assert f'database "{new_db_name}" does not exist' in retries[0], retries[0]
    assert " INFO " in retries[0], retries[0]
    assert PASSWORD not in logs and "Traceback" not in logs, logs


# -- admin commands: an existing database only --------------------------------------------------


def test_admin_commands_create_nothing_and_name_their_database(tmp_path: Path) -> None:
    for args in (["users", "list"], ["tokens", "list"], ["db", "current"]):
        line = one_line(run_cli(args, tmp_path), 3)
        assert f"sqlite:///{tmp_path / 'jobstore.db'}" in line, line
        assert "run jobstore db upgrade first" in line, line
        assert list(tmp_path.iterdir()) == [], f"{args} created {list(tmp_path.iterdir())}"

    (tmp_path / "empty.db").touch()
    line = one_line(run_cli(["users", "list", "--database-url", "sqlite:///empty.db"], tmp_path), 3)
    assert "no jobstore schema" in line and "run jobstore db upgrade first" in line, line

    upgraded = run_cli(["db", "upgrade"], tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "alembic" not in upgraded.stdout + upgraded.stderr, upgraded
    assert upgraded.stdout.startswith(f"database sqlite:///{tmp_path / 'jobstore.db'} is at")

    named = f"jobstore: database sqlite:///{tmp_path / 'jobstore.db'}"
    added = run_cli(["users", "add", "alice", "--no-password"], tmp_path)
    assert (added.returncode, added.stdout, added.stderr.splitlines()) == (
        0,
        "added user alice\n",
        [named],
    ), added
    listed = run_cli(["users", "list"], tmp_path)
    assert (listed.returncode, listed.stdout, listed.stderr.splitlines()) == (
        0,
        "alice\tuser\ttokens only\n",
        [named],
    ), listed


def test_no_migrate_on_a_database_without_schema(tmp_path: Path) -> None:
    """--migrate false on a fresh database: one line and exit 3, not a traceback."""
    (tmp_path / "empty.db").touch()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    for command in (["worker"], ["serve", "--port", str(free_port())]):
        done = run_cli([*command, "--database-url", url, "--migrate", "false"], tmp_path)
        line = one_line(done, 3)
        assert "no jobstore schema; run jobstore db upgrade first" in line, line


def test_an_unparsable_url_hides_its_password(tmp_path: Path) -> None:
    url = f"postgresql://bob:{PASSWORD}@db:notaport/jobs"
    done = run_cli(["db", "upgrade", "--database-url", url], tmp_path)
    line = one_line(done, 2)
    assert "invalid database URL 'postgresql://bob:***@db:notaport/jobs'" in line, line
