"""The composition root: settings, logging, signals, uvicorn, Alembic commands.

jobstore serve            HTTP API + executor
jobstore worker           executor only
jobstore db upgrade       migrate the schema to head (also: current, downgrade REV)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import uvicorn

from jobstore import __version__
from jobstore.api.app import create_app
from jobstore.api.kinetica import KineticaConfig
from jobstore.errors import ConfigError
from jobstore.executor.executor import Executor, ExecutorConfig
from jobstore.executor.registry import default_registry
from jobstore.service import JobService
from jobstore.settings import Settings, add_options, environment, settings_from
from jobstore.store import Database, migrate_to_head
from jobstore.store.migrate import current_revision, downgrade_to, head_revision

log = logging.getLogger("jobstore")


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
    add_options(db_sub.add_parser("upgrade", help="migrate to the newest schema"), "db", env)
    add_options(db_sub.add_parser("current", help="print the schema revision"), "db", env)
    down = db_sub.add_parser("downgrade", help="migrate down to REVISION (e.g. base)")
    down.add_argument("revision")
    add_options(down, "db", env)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _executor(db: Database, settings: Settings, command: str) -> Executor:
    registry = default_registry(settings.endpoints)
    config = ExecutorConfig(
        node_id=settings.effective_node_id(command),
        concurrency=settings.concurrency,
        lease_seconds=settings.lease_seconds,
        poll_seconds=settings.poll_seconds,
        cancel_grace_seconds=settings.cancel_grace_seconds,
        shutdown_seconds=settings.shutdown_seconds,
    )
    return Executor(db, registry, config)


def _safe_url(db: Database) -> str:
    return db.url.render_as_string(hide_password=True)


async def serve(settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=settings.pool_size)
    try:
        if settings.migrate:
            await migrate_to_head(db)
        executor = _executor(db, settings, "serve")
        service = JobService(
            db,
            executor.registry,
            default_max_attempts=settings.max_attempts,
            on_created=executor.wake,
            on_cancel=executor.request_cancel,
        )
        app = create_app(
            service,
            executor=executor,
            kinetica=KineticaConfig(
                max_body_bytes=settings.max_body_bytes, public_url=settings.public_url or None
            ),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                access_log=False,
                lifespan="on",
                # Our lifespan does the soft stop; uvicorn must not cut it short.
                timeout_graceful_shutdown=None,
            )
        )
        log.info(
            "jobstore %s on http://%s:%d, node %s, database %s, endpoints %s",
            __version__,
            settings.host,
            settings.port,
            executor.config.node_id,
            _safe_url(db),
            ", ".join(executor.registry.names()),
        )

        async def stop_server_if_executor_dies() -> None:
            await executor.stopped.wait()
            if executor.failure is not None:
                server.should_exit = True

        watcher = asyncio.create_task(stop_server_if_executor_dies())
        await server.serve()
        watcher.cancel()
        return 1 if executor.failure is not None or not server.started else 0
    finally:
        await db.dispose()


async def worker(settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=settings.pool_size)
    try:
        if settings.migrate:
            await migrate_to_head(db)
        executor = _executor(db, settings, "worker")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await executor.start()
        log.info("jobstore worker, node %s, database %s", executor.config.node_id, _safe_url(db))
        stopped = asyncio.create_task(executor.stopped.wait())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        await executor.stop()
        return 1 if executor.failure is not None else 0
    finally:
        await db.dispose()


async def db_command(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=1)
    try:
        if args.db_command == "upgrade":
            await migrate_to_head(db)
            print(f"database {_safe_url(db)} is at revision {head_revision()}")
        elif args.db_command == "current":
            print(await current_revision(db) or "empty (no revision)")
        else:
            await downgrade_to(db, args.revision)
            print(f"database {_safe_url(db)} is at revision {args.revision}")
        return 0
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from(args)
        _setup_logging(settings.log_level)
        if args.command == "serve":
            return asyncio.run(serve(settings))
        if args.command == "worker":
            return asyncio.run(worker(settings))
        return asyncio.run(db_command(args, settings))
    except ConfigError as exc:
        print(f"jobstore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
