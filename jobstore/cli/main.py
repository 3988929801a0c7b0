"""The `jobstore` command: its parser, and the dispatch to each command's module.

Nodes are built by cli/node.py (the composition root) and run by cli/serve.py; database
commands are in cli/admin.py, `jobstore jobs ...` in cli/jobs.py, `jobstore schedules ...`
in cli/schedules.py, `jobstore limits ...` in cli/limits.py and `jobstore endpoints` in
cli/endpoints.py. Those modules are imported only by the command that needs them (the last
holds its parser too, and loads rich and the client only when it runs), so `jobstore jobs ...`
and `--help` start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from jobstore import __version__
from jobstore.cli import endpoints, jobs_args, limits_args, schedules_args
from jobstore.cli.exits import exit_status
from jobstore.cli.logs import setup_logging
from jobstore.cli.settings import add_options, environment, settings_from
from jobstore.domain.errors import JobstoreError

DESCRIPTION = """\
jobstore runs jobs for HTTP clients and keeps every job, its request and its result in SQL
(SQLite by default, PostgreSQL for several nodes). Start a node, then create jobs with the
REST API, Kinetica's gpudb client, CDM's API or `jobstore jobs create`.

examples:
  jobstore serve                                   # API + executor on http://127.0.0.1:9191
  jobstore serve --port 9300 --endpoints mypkg.jobs
  jobstore worker --database-url postgresql://jobs@db/jobs   # executor only
  jobstore jobs create /sleep --data '{"seconds": 5}' --wait
  jobstore schedules add nightly /sleep --cron '0 2 * * *' --payload '{"seconds": 5}'
  jobstore limits set customer-42 2
  jobstore db upgrade --database-url postgresql://jobs@db/jobs
  jobstore users add alice --password-stdin

Every option has a JOBSTORE_* environment variable (docs/configuration.md).
"""
EPILOG = """\
exit status: 0 ok; 1 the executor failed or the server could not start; 2 a configuration or
usage error; 3 the database is down, missing, refused us or lacks jobstore's schema (run
`jobstore db upgrade`); 4 the port is in use or cannot be bound; 130 Ctrl-C.
`jobstore jobs ...`, `jobstore schedules ...` and `jobstore limits ...` have their own statuses:
`jobstore jobs --help`.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: str,
) -> argparse.ArgumentParser:
    """A command whose --help shows what it does and how it is used."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\nexamples:\n{examples}",
        formatter_class=_Formatter,
    )
    parser.set_defaults(_parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    env = environment()
    parser = argparse.ArgumentParser(
        prog="jobstore", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.set_defaults(_parser=parser)
    parser.add_argument("--version", action="version", version=f"jobstore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_options(
        _command(
            sub,
            "serve",
            "run a node: the HTTP API (REST, Kinetica, CDM, dashboard at /ui) and an executor",
            "  jobstore serve\n"
            "  jobstore serve --port 9300 --endpoints mypkg.jobs --retain-done 7d\n"
            "  jobstore serve --database-url postgresql://jobs@db/jobs --node-id node-a",
        ),
        "serve",
        env,
    )
    add_options(
        _command(
            sub,
            "worker",
            "run an executor only: it runs jobs that nodes sharing its database take in",
            "  jobstore worker --database-url postgresql://jobs@db/jobs --concurrency 32",
        ),
        "worker",
        env,
    )
    db = _command(sub, "db", "create or migrate the database schema", "  jobstore db upgrade\n")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = _command(
        db_sub,
        "upgrade",
        "create the schema, or migrate it to the newest (`serve` does this at start)",
        "  jobstore db upgrade --database-url postgresql://jobs@db/jobs",
    )
    add_options(upgrade, "db", env)
    add_options(upgrade, "db upgrade", env)
    add_options(
        _command(db_sub, "current", "print the schema revision", "  jobstore db current"),
        "db",
        env,
    )
    down = _command(
        db_sub,
        "downgrade",
        "migrate the schema down to REVISION (base removes it)",
        "  jobstore db downgrade 0005",
    )
    down.add_argument("revision", help="a revision id, or base")
    add_options(down, "db", env)

    users = _command(
        sub,
        "users",
        "manage the users of --auth required",
        "  echo 's3cret' | jobstore users add alice --password-stdin\n  jobstore users list",
    )
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add_user = _command(
        users_sub,
        "add",
        "add a user; asks for the password unless told otherwise",
        "  jobstore users add alice\n"
        "  echo 's3cret' | jobstore users add alice --password-stdin\n"
        "  jobstore users add ops --admin --no-password    # signs in with tokens only",
    )
    add_user.add_argument("name")
    add_user.add_argument("--admin", action="store_true", help="may see every user's jobs")
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_user.add_argument(
        "--no-password", action="store_true", help="a user that signs in with tokens only"
    )
    add_options(add_user, "db", env)
    add_options(_command(users_sub, "list", "list users", "  jobstore users list"), "db", env)

    tokens = _command(
        sub,
        "tokens",
        "manage API tokens (sent as 'Authorization: Bearer ...')",
        "  jobstore tokens create --user alice\n  jobstore tokens list",
    )
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = _command(
        tokens_sub,
        "create",
        "create a token; it is printed once, as the last line",
        "  jobstore tokens create --user alice --project p9",
    )
    create.add_argument("--user", required=True, help="whose token it is")
    create.add_argument("--project", default=None, help="scope the token to a project")
    add_options(create, "db", env)
    revoke = _command(
        tokens_sub,
        "revoke",
        "revoke a token by its id or its text",
        "  jobstore tokens revoke 3",
    )
    revoke.add_argument("token", help="the token's id (from `tokens list`) or its text")
    add_options(revoke, "db", env)
    add_options(
        _command(tokens_sub, "list", "list tokens (never their text)", "  jobstore tokens list"),
        "db",
        env,
    )
    jobs_args.add_parser(sub, env)
    schedules_args.add_parser(sub, env)
    limits_args.add_parser(sub, env)
    endpoints.add_parser(sub, env)
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; a mistake is reported with the usage of the command it was made in (exit 2)."""
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        parser: argparse.ArgumentParser = args._parser
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
        if args.command == "jobs":
            from jobstore.cli.jobs import run

            return run(args, environment())
        if args.command == "schedules":
            from jobstore.cli.schedules import run as run_schedules

            return run_schedules(args, environment())
        if args.command == "limits":
            from jobstore.cli.limits import run as run_limits

            return run_limits(args, environment())
        if args.command == "endpoints":
            return endpoints.run(args, environment())
        settings = settings_from(args)
        setup_logging(settings.log_level, settings.log_format)
        # Imported here: `jobstore jobs ...` and --help never load the server's modules.
        if args.command in ("serve", "worker"):
            from jobstore.cli.serve import run_node

            return run_node(args.command, settings)
        from jobstore.cli.admin import admin_command

        return asyncio.run(admin_command(args, settings))
    except JobstoreError as exc:
        status = exit_status(exc)
        if status is None:
            raise
        print(f"jobstore: {exc}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
