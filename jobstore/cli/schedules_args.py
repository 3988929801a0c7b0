"""The options of `jobstore schedules ...`; what each command does is in cli/schedules.py.

Kept apart from the commands (as jobs_args.py is from jobs.py) so that the parser, and with it
`jobstore --help` and `jobstore serve`, never loads rich or the client.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from jobstore.cli.jobs_args import _moment, _span, command_group

DESCRIPTION = """\
List, add, pause, resume, delete and fire recurring schedules on a running node (its REST
API, /api/v1/schedules). Each fire of a schedule creates a job.

examples:
  jobstore schedules add nightly /sleep --cron '0 2 * * *' --timezone Europe/Paris \\
      --payload '{"seconds": 5}'
  jobstore schedules add heartbeat /echo --every 30
  jobstore schedules list
  jobstore schedules pause nightly
  jobstore schedules fire nightly

The node and how to sign in to it are as for `jobstore jobs` (--url, --token, --user).
"""
EPILOG = """\
exit status: 0 ok; 1 the node refused (no such schedule, the name is taken, an invalid cron or
option, not signed in ...); 2 a usage error; 3 the node could not be reached or answered 503.
"""


def _every(value: str) -> float:
    """--every: seconds (90, 0.5) or a duration (30s, 15m, 2h, 1d)."""
    seconds = _span(value)
    if seconds == 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0, got {value!r}")
    return seconds


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """Add `schedules` and its commands to the top-level subparsers."""
    command = command_group(
        sub,
        env,
        "schedules",
        "list, add, pause, resume, delete and fire recurring schedules on a running node",
        DESCRIPTION,
        EPILOG,
    )

    command(
        "list",
        "list the schedules: when each fires next, its last job, whether it is enabled",
        "  jobstore schedules list\n  jobstore schedules list --json",
    )

    add = command(
        "add",
        "add a schedule: each fire creates a job of ENDPOINT",
        "  jobstore schedules add nightly /sleep --cron '0 2 * * *' --timezone Europe/Paris\n"
        "  jobstore schedules add heartbeat /echo --every 30s --payload '{\"ping\": true}'\n"
        "  jobstore schedules add report /echo --cron '0 9 * * 1-5' --paused",
    )
    add.add_argument("name", help="1 to 100 letters, digits, '_', '-' or '.'")
    add.add_argument("endpoint", help="the endpoint each fire runs, e.g. /sleep")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--cron",
        metavar="EXPR",
        help="5 fields (minute hour day month weekday), or 6 with seconds first",
    )
    when.add_argument(
        "--every",
        type=_every,
        metavar="SECONDS",
        help="fire every SECONDS (or a duration: 30s, 15m, 2h), counted from --start-at",
    )
    add.add_argument(
        "--timezone", metavar="ZONE", help="the IANA zone the cron is read in (default UTC)"
    )
    add.add_argument(
        "--misfire",
        choices=("skip", "once", "all"),
        help="fire times missed while no node was up: skip them (default), fire once, fire all",
    )
    add.add_argument("--payload", metavar="JSON|@FILE", help="each job's request (@- for stdin)")
    add.add_argument(
        "--start-at", type=_moment, metavar="TIME", help="no fire before TIME (RFC 3339)"
    )
    add.add_argument("--end-at", type=_moment, metavar="TIME", help="no fire after TIME")
    add.add_argument("--priority", type=int, metavar="N", help="each job's priority, -1000 to 1000")
    add.add_argument(
        "--concurrency-key", metavar="KEY", help="each job's concurrency key (1-128 characters)"
    )
    add.add_argument("--paused", action="store_true", help="add it paused (resume to start it)")

    for name, summary in (
        ("pause", "pause a schedule: it fires no more until resumed"),
        ("resume", "resume a schedule: it fires next at its first fire time from now"),
        ("delete", "delete a schedule (the jobs it created stay)"),
        ("fire", "create a schedule's job now, paused or not"),
    ):
        action = command(name, summary, f"  jobstore schedules {name} nightly")
        action.add_argument("name", help="the schedule's name")
