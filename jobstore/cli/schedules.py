"""`jobstore schedules ...`: what each command does. Its options are in cli/schedules_args.py.

The commands talk to the node's REST API through jobstore.client, as `jobstore jobs` does, and
share its connection, its messages and its exit statuses (cli/commands.py, cli/jobs.py).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobstore.cli.commands import EXIT_OK, UsageError, print_json
from jobstore.cli.jobs import Command, _read_at, _time, run_command
from jobstore.client import Client, Schedule


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the `schedules` command in `args`; returns the exit status. Prints no tracebacks."""
    return run_command(args, env, COMMANDS, "schedules_command")


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    schedules = client.list_schedules()
    if args.json:
        print_json({"schedules": [s.raw for s in schedules]})
        return EXIT_OK
    if not schedules:
        console.print("no schedules")
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("NAME", "SCHEDULE", "NEXT FIRE", "LAST JOB", "ENABLED"):
        table.add_column(name, justify="right" if name == "LAST JOB" else "left")
    for schedule in schedules:
        table.add_row(
            Text(schedule.name),
            Text(when(schedule)),
            _time(schedule.raw.get("next_fire_at")),
            str(schedule.last_job_id) if schedule.last_job_id is not None else "-",
            Text("yes", style="green") if schedule.enabled else Text("no", style="magenta"),
        )
    console.print(table)
    return EXIT_OK


def when(schedule: Schedule) -> str:
    """When a schedule fires, in a few words: `cron 0 9 * * * (Europe/Paris)`, `every 30s`."""
    if schedule.cron is not None:
        zone = "" if schedule.timezone == "UTC" else f" ({schedule.timezone})"
        return f"cron {schedule.cron}{zone}"
    return f"every {schedule.every_seconds or 0:g}s"


def cmd_add(client: Client, args: argparse.Namespace, console: Console) -> int:
    payload = _payload(args.payload)
    schedule = client.create_schedule(
        args.name,
        args.endpoint,
        payload,
        cron=args.cron,
        every_seconds=args.every,
        timezone=args.timezone,
        misfire=args.misfire,
        start_at=args.start_at,
        end_at=args.end_at,
        enabled=not args.paused,
        priority=args.priority,
        concurrency_key=args.concurrency_key,
    )
    if args.json:
        print_json(schedule.raw)
        return EXIT_OK
    console.print(Text(f"added schedule {schedule.name}, {when(schedule)}; {_next(schedule)}"))
    return EXIT_OK


def _payload(data: str | None) -> Any:
    """--payload: JSON, or @FILE of JSON (@- for stdin)."""
    if data is None:
        return None
    text = data
    if data[:1] == "@":
        text = _read_at(data, "--payload").decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload is not valid JSON: {exc}") from None


def _next(schedule: Schedule) -> str:
    if not schedule.enabled:
        return "paused"
    if schedule.next_fire_at is None:
        return "no fire time left"
    return f"next fire {_time(schedule.raw.get('next_fire_at'))}"


def cmd_pause(client: Client, args: argparse.Namespace, console: Console) -> int:
    return _said(client.pause_schedule(args.name), args, console, "paused")


def cmd_resume(client: Client, args: argparse.Namespace, console: Console) -> int:
    schedule = client.resume_schedule(args.name)
    return _said(schedule, args, console, f"resumed, {_next(schedule)}")


def _said(schedule: Schedule, args: argparse.Namespace, console: Console, what: str) -> int:
    if args.json:
        print_json(schedule.raw)
    else:
        console.print(Text(f"schedule {schedule.name} {what}"))
    return EXIT_OK


def cmd_delete(client: Client, args: argparse.Namespace, console: Console) -> int:
    client.delete_schedule(args.name)
    if args.json:
        print_json({"deleted": args.name})
    else:
        console.print(Text(f"schedule {args.name} deleted"))
    return EXIT_OK


def cmd_fire(client: Client, args: argparse.Namespace, console: Console) -> int:
    job_id = client.fire_schedule(args.name)
    answer: dict[str, Any] = {"job_id": job_id, "location": f"/api/v1/jobs/{job_id}"}
    if args.json:
        print_json(answer)
    else:
        console.print(Text(f"fired schedule {args.name}: job {job_id}"))
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "add": cmd_add,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "delete": cmd_delete,
    "fire": cmd_fire,
}
