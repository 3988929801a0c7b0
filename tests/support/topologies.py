"""Throwaway database topologies for end-to-end tests: PostgreSQL clusters, standbys, PgBouncer,
and child processes with a skewed clock.

Everything runs from a fresh `mkdtemp` folder under the system temp dir, on a free port of
127.0.0.1, as the `postgres` OS user when the tests run as root (PostgreSQL and PgBouncer both
refuse root). The machine's own PostgreSQL server is never touched.

    primary = PgCluster.create()                        # initdb + start
    standby = PgCluster.standby_of(primary)             # pg_basebackup -R, synchronous
    bouncer = PgBouncer.start(primary, pool_mode="transaction")
    env = faketime_env(+30)                             # for subprocess.Popen(..., env=env)
    ...
    bouncer.cleanup(); standby.cleanup(); primary.cleanup()

The SQL helpers (`execute`, `fetch`, `fetchval`) are synchronous: each opens one asyncpg
connection in a fresh event loop, so call them from sync tests or fixtures only; async code uses
`connect(url)` (or the `a*` methods) instead. Anything still running when the interpreter exits
is stopped and removed by an `atexit` hook, as a last resort behind the fixtures' own cleanup.

A missing tool makes `require_topology_tools` skip the test, or fail it under CI (`CI` set).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import pytest

from tests.support.e2e import free_port, wait_for

__all__ = [
    "PgBouncer",
    "PgCluster",
    "acquire",
    "cleanup_all",
    "connect",
    "execute",
    "faketime_env",
    "faketime_library",
    "fetch",
    "fetchval",
    "find_pg_bin",
    "find_pgbouncer",
    "free_port",
    "require_topology_tools",
]

T = TypeVar("T")
HOST = "127.0.0.1"
PG_USER = "postgres"  # the OS user every server runs as (when we are root) and the superuser
STOP_MODES = ("smart", "fast", "immediate")
StopMode = Literal["smart", "fast", "immediate"]
Tool = Literal["postgres", "pgbouncer", "faketime"]

# Settings for a test cluster: fast and small; nothing here weakens what a test can observe
# about committed data except fsync, which only matters if the machine itself crashes.
_PG_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "100",
    "shared_buffers": "'16MB'",
    "fsync": "off",
    "full_page_writes": "off",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "max_replication_slots": "5",
    "wal_keep_size": "'64MB'",
    "hot_standby": "on",
    "wal_receiver_status_interval": "'1s'",
    "wal_retrieve_retry_interval": "'200ms'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %a '",
    "log_connections": "off",
    "timezone": "'UTC'",
}
# Written by ALTER SYSTEM on a primary; a standby must not copy them (see `standby_of`).
_NOT_INHERITED = ("synchronous_standby_names", "default_transaction_read_only")
_LIVE: weakref.WeakSet[PgCluster | PgBouncer] = weakref.WeakSet()


# -- tools ------------------------------------------------------------------------------------


def find_pg_bin() -> Path | None:
    """The bin dir of the newest PostgreSQL with initdb, pg_ctl, pg_basebackup and postgres."""
    wanted = ("initdb", "pg_ctl", "pg_basebackup", "postgres")

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([\d.]+)/bin", path)
        return tuple(int(x) for x in found.group(1).split(".")) if found else (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if all(os.access(Path(candidate, tool), os.X_OK) for tool in wanted):
            return Path(candidate)
    return None


def find_pgbouncer() -> Path | None:
    """The pgbouncer binary (Debian puts it in /usr/sbin, often not on a root-less PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    return Path(found) if found else None


def faketime_library() -> Path | None:
    """libfaketime's preload library (`libfaketime.so.1`), wherever the distribution put it."""
    patterns = (
        "/usr/lib/*/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/lib64/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    )
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            return Path(path)
    return None


def _missing(tool: Tool) -> str | None:
    if tool == "postgres":
        if find_pg_bin() is None:
            return "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres)"
    elif tool == "pgbouncer":
        if find_pgbouncer() is None:
            return "pgbouncer"
    elif tool == "faketime":
        if faketime_library() is None:
            return "libfaketime (the faketime package)"
    else:  # pragma: no cover - a typo in a test
        raise ValueError(f"unknown tool {tool!r}")
    if tool in ("postgres", "pgbouncer") and os.geteuid() == 0:
        try:
            _postgres_ids()
        except KeyError:
            return f"the {PG_USER!r} OS user (servers refuse to run as root)"
    return None


def require_topology_tools(*tools: Tool) -> None:
    """Skip the calling test when a tool is missing; under CI (`CI` set), fail it instead.

    `tools` is any of "postgres", "pgbouncer", "faketime"; with none, all three are required.
    """
    missing = [m for t in tools or ("postgres", "pgbouncer", "faketime") if (m := _missing(t))]
    if not missing:
        return
    message = "missing for the topology tests: " + ", ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run them)")
    pytest.skip(message)


# -- running as postgres ----------------------------------------------------------------------


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


def _as_postgres() -> dict[str, Any]:
    """Popen keywords that drop to the postgres user when we are root (no-op otherwise)."""
    if os.geteuid() != 0:
        return {}
    uid, gid = _postgres_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


def _workdir(prefix: str) -> Path:
    """A fresh folder under the temp dir that the postgres user owns."""
    path = Path(tempfile.mkdtemp(prefix=f"jobstore-{prefix}-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        uid, gid = _postgres_ids()
        os.chown(path, uid, gid)
    return path


def _run(argv: list[str], *, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a tool as postgres; raise with its output when it fails."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **_as_postgres(),
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
    return done


# -- SQL helpers --------------------------------------------------------------------------------


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """An asyncpg connection (10 s connect timeout unless given)."""
    kwargs.setdefault("timeout", 10)
    return await asyncpg.connect(url, **kwargs)


@contextlib.asynccontextmanager
async def acquire(url: str, **kwargs: Any) -> Any:
    """`async with acquire(url) as conn:` -- a connection that is closed afterwards."""
    conn = await connect(url, **kwargs)
    try:
        yield conn
    finally:
        await conn.close()


def _sync(make: Callable[[], Awaitable[T]]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "the sync SQL helpers cannot run inside an event loop; use connect()/acquire()"
        )

    async def main() -> T:
        return await make()

    return asyncio.run(main())


def execute(url: str, sql: str, *args: Any, **connect_kwargs: Any) -> str:
    """Run one statement on a new connection; return its status tag ("INSERT 0 1")."""

    async def go() -> str:
        async with acquire(url, **connect_kwargs) as conn:
            return str(await conn.execute(sql, *args))

    return _sync(go)


def fetch(url: str, sql: str, *args: Any, **connect_kwargs: Any) -> list[asyncpg.Record]:
    """Run one query on a new connection; return its rows."""

    async def go() -> list[asyncpg.Record]:
        async with acquire(url, **connect_kwargs) as conn:
            return list(await conn.fetch(sql, *args))

    return _sync(go)


def fetchval(url: str, sql: str, *args: Any, **connect_kwargs: Any) -> Any:
    """Run one query on a new connection; return the first column of its first row."""

    async def go() -> Any:
        async with acquire(url, **connect_kwargs) as conn:
            return await conn.fetchval(sql, *args)

    return _sync(go)


# -- PostgreSQL ---------------------------------------------------------------------------------


class PgCluster:
    """A throwaway PostgreSQL cluster (data dir, socket and log in one temp folder).

    Build one with `create` or `standby_of`; `cleanup` stops it and removes the folder.
    Trust authentication for everything; the superuser is `postgres`.
    """

    def __init__(self, root: Path, port: int, *, name: str, bin_dir: Path) -> None:
        self.root = root
        self.port = port
        self.name = name
        self.bin_dir = bin_dir
        self.data_dir = root / "data"
        self.log_path = root / "postgres.log"
        self._auto_port = False  # the port was picked here: a first start may pick another
        self._started = False
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<PgCluster {self.name} port={self.port} data={self.data_dir}>"

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(
        cls, port: int | None = None, *, name: str = "primary", start: bool = True
    ) -> PgCluster:
        """initdb a new cluster on `port` (default: a free one); start it unless `start=False`."""
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries; call require_topology_tools()")
        cluster = cls(_workdir(f"pg-{name}"), port or free_port(), name=name, bin_dir=bin_dir)
        cluster._auto_port = port is None
        try:
            _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(cluster.data_dir),
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                cwd=cluster.root,
            )
            with (cluster.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\ninclude 'jobstore_test.conf'\n")
            cluster._write_settings()
            if start:
                cluster.start()
        except BaseException:
            cluster.cleanup()
            raise
        return cluster

    @classmethod
    def standby_of(
        cls,
        primary: PgCluster,
        *,
        name: str = "standby",
        synchronous: bool = True,
        port: int | None = None,
    ) -> PgCluster:
        """A streaming standby of `primary` (pg_basebackup -R -X stream), started.

        Its primary_conninfo carries `application_name=<name>`. With `synchronous=True` the
        primary's `synchronous_standby_names` becomes `'<name>'` (replacing any earlier one) and
        this returns once pg_stat_replication shows the standby as `sync`: from then on a
        commit on the primary returns only after the standby has flushed it. The primary keeps
        that setting after the standby dies, so commits there then hang; call
        `primary.set_synchronous_standbys(None)` when a test needs the primary alone again.
        """
        cluster = cls(
            _workdir(f"pg-{name}"), port or free_port(), name=name, bin_dir=primary.bin_dir
        )
        cluster._auto_port = port is None
        try:
            conninfo = f"host={HOST} port={primary.port} user={PG_USER} application_name={name}"
            _run(
                [
                    str(primary.bin_dir / "pg_basebackup"),
                    "-D",
                    str(cluster.data_dir),
                    "-d",
                    conninfo,
                    "-X",
                    "stream",
                    "-R",
                    "--checkpoint=fast",
                    "--no-sync",
                ],
                cwd=cluster.root,
                timeout=120,
            )
            cluster._strip_inherited_settings()
            cluster._write_settings()
            cluster.start()
            if synchronous:
                primary.set_synchronous_standbys(name)
                wait_for(
                    f"{name} to stream synchronously from {primary.name}",
                    lambda: primary.replication_state(name) == ("streaming", "sync"),
                    timeout=30,
                    logs=lambda: cluster.log_text() + primary.log_text(),
                )
            else:
                wait_for(
                    f"{name} to stream from {primary.name}",
                    lambda: (primary.replication_state(name) or ("",))[0] == "streaming",
                    timeout=30,
                    logs=lambda: cluster.log_text() + primary.log_text(),
                )
        except BaseException:
            cluster.cleanup()
            raise
        return cluster

    def _write_settings(self) -> None:
        settings = dict(_PG_SETTINGS, port=str(self.port))
        settings["unix_socket_directories"] = f"'{self.root}'"
        settings["cluster_name"] = f"'{self.name}'"
        body = "".join(f"{k} = {v}\n" for k, v in settings.items())
        path = self.data_dir / "jobstore_test.conf"
        path.write_text("# written by tests/support/topologies.py\n" + body)
        if os.geteuid() == 0:
            os.chown(path, *_postgres_ids())

    def _strip_inherited_settings(self) -> None:
        auto = self.data_dir / "postgresql.auto.conf"
        keep = [
            line
            for line in auto.read_text().splitlines(keepends=True)
            if not line.strip().lower().startswith(_NOT_INHERITED)
        ]
        auto.write_text("".join(keep))

    # -- process --------------------------------------------------------------------------------

    def _pg_ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
            cwd=self.root,
            timeout=timeout,
        )

    def start(self) -> None:
        """Start the server (pg_ctl start -w).

        If the port was picked here and got taken meanwhile, the first start retries on another
        free port; later starts keep the port (standbys and PgBouncer point at it).
        """
        for attempt in range(3):
            logged = len(self.log_text())
            try:
                self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path))
            except RuntimeError as exc:
                log = self.log_text()
                taken = "could not bind" in log[logged:]
                if not (taken and self._auto_port and not self._started and attempt < 2):
                    raise RuntimeError(f"{exc}\n--- {self.name} log ---\n{log}") from exc
                self.port = free_port()
                self._write_settings()
            else:
                self._started = True
                return

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: "fast" (clean), or "immediate" (no shutdown checkpoint, like a crash).

        A no-op when it is not running.
        """
        if mode not in STOP_MODES:
            raise ValueError(f"mode must be one of {STOP_MODES}")
        if self.is_running():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def restart(self) -> None:
        """Stop (fast) and start again."""
        self.stop("fast")
        self.start()

    def is_running(self) -> bool:
        """Whether a postmaster runs on this data dir (pg_ctl status)."""
        if not self.data_dir.exists():
            return False
        done = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            cwd=self.root,
            capture_output=True,
            check=False,
            **_as_postgres(),
        )
        return done.returncode == 0

    def promote(self, timeout: float = 30) -> None:
        """Promote a standby (pg_ctl promote -w) and wait until it leaves recovery."""
        self._pg_ctl("promote", "-w", "-t", str(int(timeout)))
        wait_for(
            f"{self.name} to leave recovery",
            lambda: self.fetchval("SELECT NOT pg_is_in_recovery()"),
            timeout=timeout,
            logs=self.log_text,
        )

    def log_text(self) -> str:
        """The server log so far ("" before the first start)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (from postmaster.pid), or None."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def cleanup(self) -> None:
        """Stop immediately if running and remove the whole folder. Safe to call twice."""
        try:
            if self.data_dir.exists():
                self.stop("immediate")
        except Exception:
            # pg_ctl failed: kill the postmaster ourselves (its children then exit too).
            pid = self.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- SQL ------------------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = PG_USER) -> str:
        """postgresql://USER@127.0.0.1:PORT/DATABASE"""
        return f"postgresql://{user}@{HOST}:{self.port}/{database}"

    def execute(self, sql: str, *args: Any, database: str = "postgres") -> str:
        """Run one statement on a new connection (sync); return its status tag."""
        return execute(self.url(database), sql, *args)

    def fetch(self, sql: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
        """Run one query on a new connection (sync); return its rows."""
        return fetch(self.url(database), sql, *args)

    def fetchval(self, sql: str, *args: Any, database: str = "postgres") -> Any:
        """Run one query on a new connection (sync); return the first value."""
        return fetchval(self.url(database), sql, *args)

    async def aexecute(self, sql: str, *args: Any, database: str = "postgres") -> str:
        """`execute` for async code."""
        async with acquire(self.url(database)) as conn:
            return str(await conn.execute(sql, *args))

    async def afetch(
        self, sql: str, *args: Any, database: str = "postgres"
    ) -> list[asyncpg.Record]:
        """`fetch` for async code."""
        async with acquire(self.url(database)) as conn:
            return list(await conn.fetch(sql, *args))

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; return its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def is_in_recovery(self) -> bool:
        """True on a standby."""
        return bool(self.fetchval("SELECT pg_is_in_recovery()"))

    def replication_state(self, application_name: str) -> tuple[str, str] | None:
        """(state, sync_state) of a standby in this server's pg_stat_replication, or None."""
        rows = self.fetch(
            "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
            application_name,
        )
        return (str(rows[0]["state"]), str(rows[0]["sync_state"])) if rows else None

    def _alter_system(self, setting: str, value: str | None, *, expect: str) -> None:
        """ALTER SYSTEM SET (or RESET), reload, and wait until a new session sees `expect`."""
        url = self.url()
        statement = (
            f"ALTER SYSTEM RESET {setting}"
            if value is None
            else f"ALTER SYSTEM SET {setting} = '{value.replace(chr(39), chr(39) * 2)}'"
        )

        async def go() -> None:
            # ALTER SYSTEM is allowed in a read-only session: set_read_only(False) works.
            async with acquire(url) as conn:
                await conn.execute(statement)
                await conn.execute("SELECT pg_reload_conf()")

        _sync(go)
        # pg_reload_conf() only signals the postmaster, which re-reads the files a bit later.
        wait_for(
            f"{setting} = {expect!r} on {self.name}",
            lambda: self.fetchval("SELECT current_setting($1) = $2", setting, expect),
            timeout=10,
            logs=self.log_text,
        )

    def set_synchronous_standbys(self, names: str | None) -> None:
        """ALTER SYSTEM SET synchronous_standby_names (None: reset, commits no longer wait)."""
        self._alter_system("synchronous_standby_names", names, expect=names or "")

    def set_read_only(self, read_only: bool) -> None:
        """Make the server refuse writes (SQLSTATE 25006) from sessions that don't opt out.

        ALTER SYSTEM SET default_transaction_read_only + pg_reload_conf, then waits until a new
        session sees it. Existing sessions see it too, from their next transaction after they
        process the reload (an idle session does so before its next statement); a transaction
        already open keeps its mode, and a client can still `SET default_transaction_read_only
        = off` or `BEGIN READ WRITE`.
        """
        if read_only:
            self._alter_system("default_transaction_read_only", "on", expect="on")
        else:
            self._alter_system("default_transaction_read_only", None, expect="off")


# -- PgBouncer ----------------------------------------------------------------------------------


# PgBouncer refuses a connection whose startup packet carries a parameter it does not know
# ("unsupported startup parameter"), and silently drops the ones listed here. asyncpg (and so
# SQLAlchemy's asyncpg dialect) sends only client_encoding, which PgBouncer tracks itself: it
# needs none. extra_float_digits is what psycopg and JDBC send; it only formats floats.
# Deliberately not listed: options, search_path, statement_timeout -- ignored, a client's
# setting would silently not apply; pass `settings={"ignore_startup_parameters": ...}` to try.
IGNORE_STARTUP_PARAMETERS = "extra_float_digits"


class PgBouncer:
    """PgBouncer in front of one PostgreSQL server, run in the foreground as postgres.

    Trust auth; the users it knows are listed in its auth_file. `version` is the installed
    PgBouncer's, e.g. "1.18.0". Before 1.21 PgBouncer does not track prepared statements, so in
    transaction mode a client must not cache them: asyncpg with its default statement cache
    fails under concurrency ("prepared statement __asyncpg_stmt_1__ does not exist"). The SQL
    helpers here pass `statement_cache_size=0`; nothing here turns on max_prepared_statements.
    """

    def __init__(self, root: Path, port: int, target: tuple[str, int], version: str) -> None:
        self.root = root
        self.port = port
        self.target = target
        self.version = version
        self.ini_path = root / "pgbouncer.ini"
        self.log_path = root / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pool_mode = "transaction"
        self.default_pool_size = 20
        self.databases: dict[str, str] = {}
        self.users: tuple[str, ...] = (PG_USER,)
        self.settings: dict[str, str] = {}
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<PgBouncer port={self.port} -> {self.target[0]}:{self.target[1]}>"

    @property
    def version_info(self) -> tuple[int, ...]:
        """`version` as numbers, e.g. (1, 18, 0)."""
        return tuple(int(p) for p in re.findall(r"\d+", self.version)[:3])

    @staticmethod
    def installed_version() -> str:
        """The installed PgBouncer's version ("1.18.0")."""
        binary = find_pgbouncer()
        if binary is None:
            raise RuntimeError("no pgbouncer; call require_topology_tools('pgbouncer')")
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        found = re.search(r"PgBouncer\s+(\S+)", out)
        if not found:
            raise RuntimeError(f"cannot read the PgBouncer version from {out!r}")
        return found.group(1)

    @classmethod
    def start(
        cls,
        target: PgCluster | tuple[str, int],
        *,
        pool_mode: Literal["session", "transaction", "statement"] = "transaction",
        default_pool_size: int = 20,
        port: int | None = None,
        databases: Mapping[str, str] | None = None,
        users: Iterable[str] = (PG_USER,),
        settings: Mapping[str, str | int] | None = None,
    ) -> PgBouncer:
        """Start PgBouncer for `target` and wait until it accepts connections.

        Every database maps to the same name on `target` (`* = host=.. port=..`); `databases`
        adds entries of its own (name -> libpq connect string). `settings` overrides or adds
        [pgbouncer] settings (e.g. {"server_login_retry": 5}).
        """
        binary = find_pgbouncer()
        if binary is None:
            raise RuntimeError("no pgbouncer; call require_topology_tools('pgbouncer')")
        address = (HOST, target.port) if isinstance(target, PgCluster) else target
        bouncer = cls(_workdir("pgbouncer"), port or free_port(), address, cls.installed_version())
        bouncer.pool_mode = pool_mode
        bouncer.default_pool_size = default_pool_size
        bouncer.databases = dict(databases or {})
        bouncer.users = tuple(users)
        bouncer.settings = {k: str(v) for k, v in (settings or {}).items()}
        try:
            bouncer._write_config()
            bouncer._launch(binary)
        except BaseException:
            bouncer.cleanup()
            raise
        return bouncer

    def _write_config(self) -> None:
        host, port = self.target
        userlist = "".join(f'"{user}" ""\n' for user in self.users)
        (self.root / "userlist.txt").write_text(userlist)
        databases = "".join(f"{name} = {conn}\n" for name, conn in self.databases.items())
        settings = {
            "listen_addr": HOST,
            "listen_port": str(self.port),
            "unix_socket_dir": str(self.root),
            "auth_type": "trust",
            "auth_file": str(self.root / "userlist.txt"),
            "admin_users": PG_USER,
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.default_pool_size),
            "max_client_conn": "500",
            "ignore_startup_parameters": IGNORE_STARTUP_PARAMETERS,
            # Fail fast and retry fast: tests kill and promote servers behind it.
            "server_login_retry": "1",
            "server_connect_timeout": "5",
            "query_wait_timeout": "30",
            "log_connections": "0",
            "log_disconnections": "0",
        }
        settings.update(self.settings)
        body = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self.ini_path.write_text(
            f"[databases]\n{databases}* = host={host} port={port}\n\n[pgbouncer]\n{body}"
        )
        if os.geteuid() == 0:
            for path in (self.ini_path, self.root / "userlist.txt"):
                os.chown(path, *_postgres_ids())

    def _launch(self, binary: Path) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), str(self.ini_path)],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_postgres(),
            )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pgbouncer exited {self.proc.returncode}\n--- log ---\n{self.log_text()}"
                )
            with socket.socket() as sock:
                sock.settimeout(0.5)
                return sock.connect_ex((HOST, self.port)) == 0

        wait_for("pgbouncer to listen", listening, timeout=15, logs=self.log_text)

    def url(self, database: str = "postgres", user: str = PG_USER) -> str:
        """postgresql://USER@127.0.0.1:PORT/DATABASE, through PgBouncer."""
        return f"postgresql://{user}@{HOST}:{self.port}/{database}"

    def execute(self, sql: str, *args: Any, database: str = "postgres") -> str:
        """Run one statement through PgBouncer (sync, no prepared-statement cache)."""
        return execute(self.url(database), sql, *args, statement_cache_size=0)

    def fetch(self, sql: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
        """Run one query through PgBouncer (sync, no prepared-statement cache)."""
        return fetch(self.url(database), sql, *args, statement_cache_size=0)

    def fetchval(self, sql: str, *args: Any, database: str = "postgres") -> Any:
        """Run one query through PgBouncer (sync); return the first value."""
        return fetchval(self.url(database), sql, *args, statement_cache_size=0)

    def retarget(self, target: PgCluster | tuple[str, int]) -> None:
        """Point `*` at another server (after a failover) and reload (SIGHUP).

        PgBouncer closes server connections to the old address once they are released;
        clients stay connected.
        """
        self.target = (HOST, target.port) if isinstance(target, PgCluster) else target
        self._write_config()
        self.reload()

    def reload(self) -> None:
        """Re-read pgbouncer.ini (SIGHUP)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("pgbouncer is not running")
        self.proc.send_signal(signal.SIGHUP)

    def is_running(self) -> bool:
        """Whether the PgBouncer process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (SIGKILL after `timeout`) and reap. A no-op when it is not running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        """PgBouncer's log (its stderr) so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        """Stop it and remove its folder. Safe to call twice."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# -- skewed clocks ------------------------------------------------------------------------------

# Python >= 3.11's time.sleep() is clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which
# libfaketime 0.9.10 (Debian 12) breaks when it leaves the monotonic clock alone: every
# time.sleep() raises "OSError: [Errno 22] Invalid argument" (libfaketime issue #426). This
# sitecustomize, put first on the child's PYTHONPATH, swaps in a select()-based sleep and then
# runs whatever sitecustomize the child would have loaded otherwise.
_SLEEP_FIX = '''\
"""Installed by tests/support/topologies.faketime_env: time.sleep that survives libfaketime."""
import importlib.machinery as _machinery
import os as _os
import select as _select
import sys as _sys
import time as _time


def _sleep(secs, _monotonic=_time.monotonic, _select=_select.select):
    """time.sleep() on select(): libfaketime mishandles clock_nanosleep(TIMER_ABSTIME)."""
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = _monotonic() + secs
    while True:
        left = deadline - _monotonic()
        if left <= 0:
            return
        _select([], [], [], left)


_time.sleep = _sleep
_here = _os.path.dirname(_os.path.abspath(__file__))
_spec = _machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in _sys.path if _os.path.abspath(p or ".") != _here]
)
if _spec is not None and _spec.loader is not None:
    import importlib.util as _util

    _next = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_next)
'''
_sleep_fix_dir: Path | None = None


def _sleep_fix_path() -> Path:
    global _sleep_fix_dir
    if _sleep_fix_dir is None or not _sleep_fix_dir.exists():
        _sleep_fix_dir = Path(tempfile.mkdtemp(prefix="jobstore-faketime-"))
        _sleep_fix_dir.chmod(0o755)
        (_sleep_fix_dir / "sitecustomize.py").write_text(_SLEEP_FIX)
    return _sleep_fix_dir


def faketime_env(
    offset_seconds: float,
    base_env: Mapping[str, str] | None = None,
    *,
    fix_python_sleep: bool = True,
) -> dict[str, str]:
    """The environment for a child whose wall clock runs `offset_seconds` ahead (or behind).

    LD_PRELOADs libfaketime with a relative FAKETIME ("+3600.000000"): time(), gettimeofday()
    and clock_gettime(CLOCK_REALTIME) are shifted and keep running; the monotonic clocks are
    left alone (FAKETIME_DONT_FAKE_MONOTONIC=1), so timeouts, asyncio and uvloop behave. With
    `fix_python_sleep` (default) a sitecustomize also replaces Python's time.sleep, which this
    libfaketime otherwise breaks (see `_SLEEP_FIX`). `base_env` defaults to os.environ.
    """
    library = faketime_library()
    if library is None:
        raise RuntimeError("no libfaketime; call require_topology_tools('faketime')")
    env = dict(os.environ if base_env is None else base_env)
    env["LD_PRELOAD"] = ":".join(p for p in (str(library), env.get("LD_PRELOAD")) if p)
    env["FAKETIME"] = f"{offset_seconds:+.6f}"
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    # Nothing changes FAKETIME while the child runs, so its 10 s cache of the spec is harmless
    # (FAKETIME_NO_CACHE only matters for specs read from a file that a test rewrites).
    for name in ("FAKETIME_NO_CACHE", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_FOLLOW_FILE"):
        env.pop(name, None)
    if fix_python_sleep:
        paths = [str(_sleep_fix_path())]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


# -- last resort ------------------------------------------------------------------------------


def cleanup_all() -> None:
    """Stop and remove every cluster and PgBouncer this process started and has not cleaned."""
    for thing in list(_LIVE):
        with contextlib.suppress(Exception):
            thing.cleanup()
    if _sleep_fix_dir is not None:
        shutil.rmtree(_sleep_fix_dir, ignore_errors=True)


atexit.register(cleanup_all)
