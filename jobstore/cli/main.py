"""The command line: flags, logging, signals, uvicorn and the Alembic commands. Nodes are
built by jobstore/cli/node.py, the composition root.

jobstore serve            HTTP API + executor
jobstore worker           executor only
jobstore db upgrade       migrate the schema to head (also: current, downgrade REV)
jobstore users add NAME   add a user (password from the terminal or --password-stdin)
jobstore tokens create --user NAME [--project P]   print a new API token
jobstore jobs list|show|create|wait|cancel|prune   talk to a running node (cli/jobs.py)

Exit status: 0 normal stop, 1 the executor failed, 2 configuration error, 3 database
unreachable, missing, refused or without jobstore's schema, 4 cannot listen on --host:--port
(in use), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

import uvicorn

from jobstore import __version__
from jobstore.cli import jobs as cli_jobs
from jobstore.cli.logs import setup_logging
from jobstore.cli.node import build_node
from jobstore.cli.settings import Settings, add_options, environment, settings_from
from jobstore.core.accounts import Authenticator
from jobstore.domain.errors import ClientError, ConfigError, DatabaseUnusable, JobstoreError
from jobstore.store import Database, migrate_to_head
from jobstore.store.migrate import downgrade_to, head_revision, require_schema

log = logging.getLogger("jobstore")


class CannotListen(JobstoreError):
    """--host:--port cannot be bound: in use, not an address of this machine, no permission."""


# Exit statuses of start-up failures, one line each on stderr (docs/configuration.md).
EXIT_STATUS: tuple[tuple[type[JobstoreError], int], ...] = (
    (ConfigError, 2),
    (DatabaseUnusable, 3),
    (CannotListen, 4),
)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: serve() installs ours, so a SIGTERM ends in
    a soft stop and exit code 0 (uvicorn re-raises the signal it caught once it is done)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_parser() -> argparse.ArgumentParser:
    env = environment()
    parser = argparse.ArgumentParser(
        prog="jobstore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"jobstore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_options(sub.add_parser("serve", help="run the HTTP API and an executor"), "serve", env)
    add_options(sub.add_parser("worker", help="run an executor only"), "worker", env)
    db = sub.add_parser("db", help="schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="create the schema, or migrate it to the newest")
    add_options(upgrade, "db", env)
    add_options(upgrade, "db upgrade", env)
    add_options(db_sub.add_parser("current", help="print the schema revision"), "db", env)
    down = db_sub.add_parser("downgrade", help="migrate down to REVISION (e.g. base)")
    down.add_argument("revision")
    add_options(down, "db", env)

    users = sub.add_parser("users", help="manage users (for --auth required)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add_user = users_sub.add_parser("add", help="add a user")
    add_user.add_argument("name")
    add_user.add_argument("--admin", action="store_true", help="may see every user's jobs")
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_user.add_argument(
        "--no-password", action="store_true", help="a user that signs in with tokens only"
    )
    add_options(add_user, "db", env)
    add_options(users_sub.add_parser("list", help="list users"), "db", env)

    tokens = sub.add_parser("tokens", help="manage API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tokens_sub.add_parser("create", help="create a token; prints it once, last")
    create.add_argument("--user", required=True)
    create.add_argument("--project", default=None, help="scope the token to a project")
    add_options(create, "db", env)
    revoke = tokens_sub.add_parser("revoke", help="revoke a token by its id or its text")
    revoke.add_argument("token")
    add_options(revoke, "db", env)
    add_options(tokens_sub.add_parser("list", help="list tokens (never their text)"), "db", env)
    cli_jobs.add_parser(sub, env)
    return parser


_LISTEN_HINTS = {
    errno.EADDRINUSE: "pick another --port, or stop what listens there",
    errno.EADDRNOTAVAIL: "that address is not on this machine; check --host",
    errno.EACCES: "ports below 1024 need privileges; pick another --port",
}


def _listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind --host:--port before anything starts, as uvicorn would (SO_REUSEADDR, one socket
    per address of the host); uvicorn listens on them once the app is up."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror}; check --host") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        hint = _LISTEN_HINTS.get(exc.errno or 0, "check --host and --port")
        raise CannotListen(f"cannot listen on {where}: {reason}; {hint}") from exc
    return sockets


async def serve(settings: Settings) -> int:
    settings.check_bind()
    node = build_node(settings, command="serve")
    sockets: list[socket.socket] = []
    try:
        sockets = _listen_sockets(settings.host, settings.port)
        await node.prepare()
        executor = node.executor
        json_logs = settings.log_format == "json"
        server = _Server(
            uvicorn.Config(
                node.app(),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                # JSON: our handler formats uvicorn's records too, access lines included.
                log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
                access_log=json_logs,
                lifespan="on",
                # Our lifespan does the soft stop; uvicorn must not cut it short.
                timeout_graceful_shutdown=None,
            )
        )
        log.info(
            "jobstore %s on http://%s:%d, auth %s, node %s, database %s, endpoints %s",
            __version__,
            settings.host,
            settings.port,
            settings.auth,
            node.node_id,
            node.db.shown_url,
            ", ".join(node.registry.names()),
        )

        async def stop_server_if_executor_dies() -> None:
            await executor.stopped.wait()
            if executor.failure is not None:
                server.should_exit = True

        watcher = asyncio.create_task(stop_server_if_executor_dies())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        try:
            await server.serve(sockets=sockets)
        except SystemExit:  # uvicorn's exit when the app's start-up failed (it logged why)
            return 1
        finally:
            watcher.cancel()
        return 1 if executor.failure is not None or not server.started else 0
    finally:
        for sock in sockets:
            sock.close()
        await node.close()


async def worker(settings: Settings) -> int:
    node = build_node(settings, command="worker")
    try:
        await node.prepare()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await node.start()
        log.info("jobstore worker, node %s, database %s", node.node_id, node.db.shown_url)
        stopped = asyncio.create_task(node.executor.stopped.wait())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        await node.stop()
        return 1 if node.executor.failure is not None else 0
    finally:
        await node.close()


async def _existing(db: Database, *, at_head: bool) -> str:
    """For the commands that must not create or migrate a database: refuse one that does not
    exist or has no jobstore schema, else name it on stderr (stdout stays the command's).
    Returns its schema revision."""
    revision = await require_schema(db, at_head=at_head)
    print(f"jobstore: database {db.shown_url}", file=sys.stderr)
    return revision


async def db_command(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=1)
    try:
        if args.db_command == "upgrade":
            await db.wait_until_reachable(settings.wait_for_database)
            await migrate_to_head(db)
            print(f"database {db.shown_url} is at revision {head_revision()}")
        elif args.db_command == "current":
            print(await _existing(db, at_head=False))
        else:
            await _existing(db, at_head=False)
            await downgrade_to(db, args.revision)
            print(f"database {db.shown_url} is at revision {args.revision}")
        return 0
    finally:
        await db.dispose()


def _read_password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the passwords differ")
    else:
        raise ConfigError("no terminal to ask for a password: use --password-stdin")
    if not password:
        raise ConfigError("empty password: use --no-password for a token-only user")
    return password


async def auth_command(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=1)
    auth = Authenticator(db)
    try:
        await _existing(db, at_head=True)
        if args.command == "users" and args.users_command == "add":
            await auth.add_user(args.name, _read_password(args), admin=args.admin)
            print(f"added user {args.name}" + (" (admin)" if args.admin else ""))
        elif args.command == "users":
            for user in await auth.list_users():
                kind = "admin" if user.is_admin else "user"
                login = "password" if user.password_hash else "tokens only"
                print(f"{user.name}\t{kind}\t{login}")
        elif args.tokens_command == "create":
            token_id, token = await auth.create_token(args.user, args.project)
            scope = f", project {args.project}" if args.project else ""
            print(f"token {token_id} for user {args.user}{scope}; it is shown only once:")
            print(token)
        elif args.tokens_command == "revoke":
            if not await auth.revoke_token(args.token):
                print("no such live token", file=sys.stderr)
                return 1
            print("revoked")
        else:
            for t in await auth.list_tokens():
                state = "revoked" if t.revoked_at else "live"
                print(f"{t.token_id}\t{t.user}\t{t.project or '-'}\t{state}")
        return 0
    except ClientError as exc:
        print(f"jobstore: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()


def _run_fast(main: Coroutine[Any, Any, int]) -> int:
    """Run a node on uvloop where it is installed (it is a dependency off Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "jobs":
            return cli_jobs.run(args, environment())
        settings = settings_from(args)
        setup_logging(settings.log_level, settings.log_format)
        if args.command in ("db", "users", "tokens"):
            # Alembic's INFO lines ("Context impl ...") are noise in an admin command's output.
            level = max(logging.WARNING, logging.getLogger().level)
            logging.getLogger("alembic").setLevel(level)
        if args.command == "serve":
            return _run_fast(serve(settings))
        if args.command == "worker":
            return _run_fast(worker(settings))
        if args.command in ("users", "tokens"):
            return asyncio.run(auth_command(args, settings))
        return asyncio.run(db_command(args, settings))
    except JobstoreError as exc:
        status = next((code for kind, code in EXIT_STATUS if isinstance(exc, kind)), None)
        if status is None:
            raise
        print(f"jobstore: {exc}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
