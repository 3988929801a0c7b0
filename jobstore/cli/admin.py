"""`jobstore db ...`, `jobstore users ...` and `jobstore tokens ...`: commands on a database.

Only `db upgrade` creates or migrates a database; the others refuse one without jobstore's
schema, and name the database they used on stderr so stdout stays the command's answer.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from jobstore.cli.settings import Settings
from jobstore.core.accounts import Authenticator
from jobstore.domain.errors import ClientError, ConfigError
from jobstore.store import Database, migrate_to_head
from jobstore.store.migrate import downgrade_to, head_revision, require_schema


async def _existing(db: Database, *, at_head: bool) -> str:
    """For the commands that must not create or migrate a database: refuse one that does not
    exist or has no jobstore schema, else name it on stderr (stdout stays the command's).
    Returns its schema revision."""
    revision = await require_schema(db, at_head=at_head)
    print(f"jobstore: database {db.shown_url}", file=sys.stderr)
    return revision


async def db_command(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, pool_size=1, **settings.database_options())
    try:
        if args.db_command == "upgrade":
            await db.wait_until_reachable(settings.wait_for_database, writable=True)
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
    db = Database(settings.database_url, pool_size=1, **settings.database_options())
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


async def admin_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in ("users", "tokens"):
        return await auth_command(args, settings)
    return await db_command(args, settings)
