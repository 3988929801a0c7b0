"""`jobstore limits ...`: what each command does. Its options are in cli/limits_args.py.

The commands talk to the node's REST API through jobstore.client, as `jobstore jobs` does, and
share its connection, its messages and its exit statuses (cli/jobs.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobstore.cli.jobs import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PIPE_WIDTH,
    UsageError,
    _api_message,
    _client,
    _fail,
    _print_json,
)
from jobstore.client import ApiError, Client, Limit, Unreachable

Command = Callable[[Client, argparse.Namespace, Console], int]


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the `limits` command in `args`; returns the exit status. Prints no tracebacks."""
    console = Console(file=sys.stdout, markup=False, highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    try:
        with _client(args, env) as client:
            return COMMANDS[args.limits_command](client, args, console)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except Unreachable as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    except ApiError as exc:
        code = EXIT_UNREACHABLE if exc.status == 503 else EXIT_REFUSED
        return _fail(_api_message(exc, args, env), code)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    limits = client.list_limits()
    if args.json:
        _print_json({"limits": [limit.raw for limit in limits]})
        return EXIT_OK
    if not limits:
        console.print("no concurrency keys")
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("KEY", "RUNNING / LIMIT", "QUEUED", "SOURCE"):
        table.add_column(name, justify="right" if name in ("RUNNING / LIMIT", "QUEUED") else "left")
    for limit in limits:
        table.add_row(Text(limit.key), usage(limit), str(limit.queued), limit.source or "-")
    console.print(table)
    return EXIT_OK


def usage(limit: Limit) -> Text:
    """`2 / 3`, `1 / -` (no limit); yellow at the limit, magenta when held (0)."""
    cap = limit.max_running
    text = f"{limit.running} / {'-' if cap is None else cap}"
    if cap == 0:
        return Text(text, style="magenta")
    return Text(text, style="yellow" if cap is not None and limit.running >= cap else "")


def cmd_set(client: Client, args: argparse.Namespace, console: Console) -> int:
    limit = client.set_limit(args.key, args.max_running)
    if args.json:
        _print_json(limit.raw)
        return EXIT_OK
    held = " (its jobs are held until it is raised)" if limit.max_running == 0 else ""
    console.print(
        Text(
            f"limit of key {limit.key} set to {limit.max_running}{held}; "
            f"{limit.running} running, {limit.queued} queued"
        )
    )
    return EXIT_OK


def cmd_delete(client: Client, args: argparse.Namespace, console: Console) -> int:
    client.delete_limit(args.key)
    if args.json:
        _print_json({"deleted": args.key})
    else:
        console.print(Text(f"named limit of key {args.key} removed"))
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "set": cmd_set,
    "delete": cmd_delete,
}
