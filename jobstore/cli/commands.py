"""What `jobstore jobs`, `schedules` and `limits` share: the client, messages and exit statuses.

Each group keeps a table of its commands (cli/jobs.py, cli/schedules.py, cli/limits.py), run by
`run_command` in cli/jobs.py. Nothing here draws with rich, which only those three may import.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Mapping
from typing import Any

from jobstore.client import ApiError, Client, safe_url

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that quit


class UsageError(Exception):
    """A mistake on the command line that argparse cannot see (exit status 2)."""


def fail(message: str, code: int) -> int:
    """Print `jobstore: message` to stderr; returns `code`."""
    print(f"jobstore: {message}", file=sys.stderr)
    return code


def api_message(exc: ApiError, args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """The node's refusal, with a hint on how to sign in when a 401 came without credentials."""
    message = str(exc)
    signed_in = args.token or args.user or env.get("JOBSTORE_TOKEN") or env.get("JOBSTORE_USER")
    if exc.status == 401 and not signed_in:
        message += " (set JOBSTORE_TOKEN, or use --token or --user)"
    return message


def open_client(args: argparse.Namespace, env: Mapping[str, str]) -> Client:
    """A client for --url, signed in with --token, --user or their JOBSTORE_* variables."""
    if args.token and args.user:
        raise UsageError("give --token or --user, not both")
    if args.password_stdin and not (args.user or env.get("JOBSTORE_USER")):
        raise UsageError("--password-stdin needs --user")
    token, user, password = args.token, args.user, None
    if not token and not user:
        token = env.get("JOBSTORE_TOKEN") or None
        user = None if token else env.get("JOBSTORE_USER") or None
    if user is not None:
        password = _password(user, args.password_stdin, env)
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, got {safe_url(args.url)}")
    return Client(args.url, token=token, user=user, password=password, timeout=args.request_timeout)


def _password(user: str, from_stdin: bool, env: Mapping[str, str]) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if "JOBSTORE_PASSWORD" in env:
        return env["JOBSTORE_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {user}: ")
    raise UsageError(f"no password for {user}: set JOBSTORE_PASSWORD or use --password-stdin")


def print_json(data: Any) -> None:
    """Print `data` as indented JSON, non-ASCII as it is."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
