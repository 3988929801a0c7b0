"""`jobstore endpoints`: the endpoints a running node can run jobs for, and how each runs.

It talks to the node's REST API (/api/v1/endpoints) through jobstore.client, as `jobstore jobs`
does, and shares its connection options, its messages and its exit statuses (cli/commands.py,
cli/jobs.py). The parser is here too; rich and the client are imported only when the command
runs, so that `jobstore --help` and `jobstore serve` never load them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobstore.cli.jobs_args import connection_options

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from jobstore.client import Client, EndpointList

SUMMARY = "list the endpoints a node runs jobs for: what runs each, and the upstream it calls"
DESCRIPTION = """\
List the endpoints of a running node (its REST API, /api/v1/endpoints): each one's name, what
runs its jobs (python: in the node; http: an upstream HTTP service of the endpoints file;
kinetica-upstream: an upstream Kinetica), the upstream's host and its description. When an
upstream Kinetica runs every name no endpoint declares, a last line says so.

Only an upstream's host is shown, never its URL's path or query, nor a header.

examples:
  jobstore endpoints
  jobstore endpoints --json
  jobstore endpoints --url http://node-b:9191

The node and how to sign in to it are as for `jobstore jobs` (--url, --token, --user).
"""
EPILOG = """\
exit status: 0 ok; 1 the node refused (not signed in ...); 2 a usage error; 3 the node could
not be reached or answered 503.
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """Add `endpoints` to the top-level subparsers."""
    parser = sub.add_parser(
        "endpoints",
        parents=[connection_options(env)],
        help=SUMMARY,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(_parser=parser, endpoints_command="list")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run `jobstore endpoints`; returns the exit status. Prints no tracebacks."""
    from jobstore.cli.jobs import run_command

    return run_command(args, env, {"list": cmd_list}, "endpoints_command")


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    from jobstore.cli.commands import EXIT_OK, print_json

    listing = client.endpoints()
    if args.json:
        print_json(listing.raw)
        return EXIT_OK
    if listing.items:
        console.print(table(listing))
    else:
        console.print("no endpoints")
    if listing.other_kind is not None:
        console.print(other_names(listing))
    return EXIT_OK


def table(listing: EndpointList) -> Table:
    """NAME, KIND, UPSTREAM (- for none) and DESCRIPTION, one row per endpoint, by name."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("NAME", "KIND", "UPSTREAM"):
        grid.add_column(name, no_wrap=True, overflow="fold")
    grid.add_column("DESCRIPTION")
    for item in listing.items:
        # Only the first line of a long description: the listing stays one line per endpoint.
        first = item.description.strip().splitlines()[0] if item.description.strip() else "-"
        grid.add_row(Text(item.name), item.kind, Text(item.upstream or "-"), Text(first))
    return grid


def other_names(listing: EndpointList) -> Text:
    """The line for the names no endpoint declares."""
    from rich.text import Text

    where = f", upstream {listing.other_upstream}" if listing.other_upstream else ""
    return Text(f"every other name: {listing.other_kind}{where}")
