"""`jobstore limits ...`: what each command does. Its options are in cli/limits_args.py.

The commands talk to the node's REST API through jobstore.client, as `jobstore jobs` does, and
share its connection, its messages and its exit statuses (cli/commands.py, cli/jobs.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobstore.cli.commands import EXIT_OK, print_json
from jobstore.cli.jobs import Command, run_command
from jobstore.client import Client, Limit


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the `limits` command in `args`; returns the exit status. Prints no tracebacks."""
    return run_command(args, env, COMMANDS, "limits_command")


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    limits = client.list_limits()
    if args.json:
        print_json({"limits": [limit.raw for limit in limits]})
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
        print_json(limit.raw)
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
        print_json({"deleted": args.key})
    else:
        console.print(Text(f"named limit of key {args.key} removed"))
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "set": cmd_set,
    "delete": cmd_delete,
}
