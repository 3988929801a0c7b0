"""The options of `jobstore limits ...`; what each command does is in cli/limits.py.

Kept apart from the commands (as jobs_args.py is from jobs.py) so that the parser, and with it
`jobstore --help` and `jobstore serve`, never loads rich or the client.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from jobstore.cli.jobs_args import command_group

DESCRIPTION = """\
List the concurrency keys of a running node (its REST API, /api/v1/limits): each key's
running jobs against its limit, its queued jobs and where the limit comes from; set and remove
named limits (admins only, when the node runs --auth required).

A job's concurrency_key option puts it in a line with every other job of that key: at most the
key's limit of them run at once, on all nodes together. A named limit wins over the
concurrency_limit of the key's endpoints; 0 holds the key's jobs until it is raised.

examples:
  jobstore limits list
  jobstore limits set customer-42 2
  jobstore limits set customer-42 0      # hold its jobs
  jobstore limits delete customer-42     # back to its endpoints' limit

The node and how to sign in to it are as for `jobstore jobs` (--url, --token, --user).
"""
EPILOG = """\
exit status: 0 ok; 1 the node refused (no named limit for the key, a key it cannot take, not
an admin, not signed in ...); 2 a usage error; 3 the node could not be reached or answered 503.
"""


def _max_running(value: str) -> int:
    """N: a whole number from 0 (the node checks the most it takes)."""
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number from 0, got {value!r}")
    return int(value)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """Add `limits` and its commands to the top-level subparsers."""
    command = command_group(
        sub,
        env,
        "limits",
        "list concurrency keys against their limits; set and remove named limits",
        DESCRIPTION,
        EPILOG,
    )

    command(
        "list",
        "list the concurrency keys: running jobs against the limit, queued jobs, its source",
        "  jobstore limits list\n  jobstore limits list --json",
    )
    put = command(
        "set",
        "set (or change) the named limit of KEY: at most N of its jobs run at once",
        "  jobstore limits set customer-42 2\n"
        "  jobstore limits set 'tenant:7/eu' 0    # hold its jobs until the limit is raised",
    )
    put.add_argument("key", help="the concurrency key: 1 to 128 printable characters")
    put.add_argument(
        "max_running", type=_max_running, metavar="N", help="0 to 1000000; 0 holds its jobs"
    )
    delete = command(
        "delete",
        "remove the named limit of KEY: it falls back to its endpoints' limit, or none",
        "  jobstore limits delete customer-42",
    )
    delete.add_argument("key", help="the concurrency key")
