"""`jobstore jobs ...`: what each command does. Its options are in cli/jobs_args.py.

The commands talk to the node's REST API through jobstore.client; rich draws the tables and
progress bars.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.json import JSON
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from jobstore.cli.commands import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    UsageError,
    api_message,
    fail,
    open_client,
    print_json,
)
from jobstore.cli.jobs_args import FILTER_FLAGS, STATES
from jobstore.client import ApiError, BulkResult, Client, JobRef, Unreachable

STYLES = {
    "scheduled": "blue",
    "queued": "cyan",
    "running": "yellow",
    "done": "green",
    "error": "bold red",
    "cancelled": "magenta",
    # how an attempt ended, besides the states above
    "timeout": "bold red",
    "lost": "red",
    "given_back": "cyan",
}
POLL_SECONDS = 1.0  # each long poll of `wait`: how often the progress bar moves
PIPE_WIDTH = 4096  # not a terminal: never fold or cut a line

Command = Callable[[Client, argparse.Namespace, Console], int]
"""One command of a group: it gets the client, the parsed arguments and the console."""

# -- running a command -----------------------------------------------------------------------


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the `jobs` command in `args`; returns the exit status. Prints no tracebacks."""
    return run_command(args, env, COMMANDS, "jobs_command")


def run_command(
    args: argparse.Namespace,
    env: Mapping[str, str],
    commands: Mapping[str, Command],
    chosen: str,
) -> int:
    """Run the command of a group (jobs, schedules, limits) that `args.<chosen>` names.

    Returns the exit status; a refusal, a usage error or an unreachable node is one line on
    stderr, never a traceback.
    """
    # No markup: tags, errors and payloads are printed as they are, brackets and all.
    console = Console(file=sys.stdout, markup=False, highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    try:
        with open_client(args, env) as client:
            return commands[getattr(args, chosen)](client, args, console)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except Unreachable as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except ApiError as exc:
        code = EXIT_UNREACHABLE if exc.status == 503 else EXIT_REFUSED
        return fail(api_message(exc, args, env), code)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a SIGPIPE would have.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _ref(text: str) -> JobRef:
    """All ASCII digits: a job id; anything else: a tag."""
    return int(text) if text.isascii() and text.isdigit() else text


# -- list ------------------------------------------------------------------------------------


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    if not 1 <= args.limit <= 500:
        raise UsageError(f"--limit must be 1-500, got {args.limit}")
    filters: dict[str, Any] = {
        **_filters(args),
        "tag": args.tag,
        "limit": args.limit,
        "before": args.before,
    }
    if args.all:
        page: dict[str, Any] = {
            "items": [job.raw for job in client.iter_jobs(**filters)],
            "next": None,
            "next_before": None,
        }
    else:
        page = client.list(**filters).raw
    if args.json:
        print_json(page)
        return EXIT_OK
    if page["items"]:
        console.print(_jobs_table(page["items"]))
    else:
        console.print("no jobs")
    if page.get("next_before") is not None:
        console.print(f"more: --before {page['next_before']} for the next page, or --all")
    try:
        console.print(Text(_counts(client.stats().raw)))
    except ApiError as exc:  # the list is what was asked for; the counts are a bonus
        print(f"jobstore: no counts: {exc}", file=sys.stderr)
    return EXIT_OK


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("ID", justify="right")
    table.add_column("TAG")
    table.add_column("ENDPOINT")
    table.add_column("STATUS")
    table.add_column("PROGRESS", justify="right")
    table.add_column("CREATED")
    table.add_column("DURATION", justify="right")
    for job in jobs:
        table.add_row(
            str(job["id"]),
            Text(job.get("tag") or ""),
            Text(job.get("endpoint") or ""),
            _status(job["status"]),
            f"{job.get('progress') or 0:.0f}%",
            _time(job.get("created_at")),
            _duration(job.get("duration_seconds")),
        )
    return table


def _counts(stats: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = stats.get("counts") or {}
    capped = stats.get("capped_at")
    order = [s for s in STATES if s in counts] + [s for s in counts if s not in STATES]

    def count(state: str) -> str:
        n = counts[state]
        return f"more than {capped}" if capped is not None and n > capped else str(n)

    return "jobs: " + ", ".join(f"{count(s)} {s}" for s in order)


# -- show ------------------------------------------------------------------------------------


def cmd_show(client: Client, args: argparse.Namespace, console: Console) -> int:
    job = client.get(_ref(args.job)).raw
    if args.json:
        print_json(job)
        return EXIT_OK
    _print_job(job, console)
    return EXIT_OK


def _print_job(job: Mapping[str, Any], console: Console) -> None:
    status = _status(job["status"])
    if not job.get("finished"):
        status.append(f" ({job.get('progress') or 0:.0f}%)")
    cancel = job.get("cancel_requested") and not job.get("finished")
    rows: list[tuple[str, Text | str | None]] = [
        ("id", str(job["id"])),
        ("tag", job.get("tag") or ""),
        ("endpoint", job.get("endpoint") or ""),
        ("status", status),
        ("error", job.get("error")),
        ("cancel", "requested" if cancel else None),
        ("attempt", f"{job.get('attempt')} of {job.get('max_attempts')}"),
        ("last error", job.get("last_error")),
        ("run at", _time(job["run_at"]) if job.get("run_at") else None),
        ("priority", str(job["priority"]) if job.get("priority") else None),
        ("retry", _retry_rule(job)),
        ("timeout", _duration(timeout) if (timeout := job.get("timeout_seconds")) else None),
        ("node", job.get("node")),
        ("created by", job.get("created_by")),
        ("created", _time(job.get("created_at"))),
        ("started", _time(job.get("started_at"))),
        ("finished", _time(job.get("finished_at"))),
        ("duration", _duration(job.get("duration_seconds"))),
        ("remove", "on complete" if job.get("remove_on_complete") else None),
    ]
    for name, value in rows:
        if value is not None:
            console.print(Text(f"{name:<12}", style="bold").append(value))
    for name in ("status_map", "options"):
        if job.get(name):
            console.print(f"{name.replace('_', ' ')}:")
            console.print(JSON.from_data(job[name], indent=2))
    if "request" in job:
        _print_payload("request", job["request"], console)
    if "response" in job:
        _print_payload("response", job["response"], console)


def _retry_rule(job: Mapping[str, Any]) -> str | None:
    """How a failed attempt runs again: None when it does not."""
    if not job.get("retry_errors"):
        return None
    backoff = job.get("backoff_seconds")
    return "on error" + (f", backoff {_duration(backoff)}" if backoff is not None else "")


def _print_payload(name: str, doc: Mapping[str, Any] | None, console: Console) -> None:
    """A request or response document: {"encoding", "json"?, "base64"?} or None."""
    if doc is None:
        console.print(f"{name}: none")
        return
    encoding = doc.get("encoding", "json")
    if encoding != "json":
        size = len(base64.b64decode(doc.get("base64") or ""))
        console.print(f"{name} ({encoding}, {size} bytes):")
    else:
        console.print(f"{name}:")
    if "json" in doc:
        console.print(JSON.from_data(doc["json"], indent=2))
    else:  # JSON text that does not parse, or bytes no schema decodes
        console.print(Text(doc.get("text", doc.get("base64")) or ""))


# -- create and wait -------------------------------------------------------------------------


def cmd_create(client: Client, args: argparse.Namespace, console: Console) -> int:
    payload, payload_base64 = _payload(args.data), _payload_base64(args.data_base64)
    encoding = args.encoding or ("binary" if payload_base64 is not None else None)
    created = client.create(
        args.endpoint,
        payload=payload,
        payload_base64=payload_base64,
        encoding=encoding,
        tag=args.tag,
        remove_on_complete=args.remove_on_complete,
        run_at=args.run_at,
        delay_seconds=args.delay,
        priority=args.priority,
        max_attempts=args.max_attempts,
        retry_errors=args.retry_errors,
        backoff_seconds=args.backoff,
        timeout_seconds=args.run_timeout,
    )
    job, new = created.raw, created.new
    if not args.json:
        what = "created job" if new else "job"
        again = "" if new else " (it existed: same tag, same request)"
        when = f", scheduled for {_time(job['run_at'])}" if job["status"] == "scheduled" else ""
        console.print(Text(f"{what} {job['id']}, tag {job.get('tag')}{when}{again}"))
    elif not args.wait:
        print_json(job)
    if args.wait:
        return _wait(client, int(job["id"]), args.timeout, console, as_json=args.json)
    return EXIT_OK


def _payload(data: str | None) -> Any:
    if data is None:
        return None
    text = _read_at(data, "--data").decode("utf-8", errors="replace") if data[:1] == "@" else data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--data is not valid JSON: {exc}") from None


def _payload_base64(data: str | None) -> str | None:
    if data is None:
        return None
    if data[:1] == "@":
        return base64.b64encode(_read_at(data, "--data-base64")).decode("ascii")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise UsageError(f"--data-base64 is not valid base64: {exc}") from None
    return data


def _read_at(spec: str, flag: str) -> bytes:
    """The bytes `@FILE` names; `@-` is standard input."""
    if spec == "@-":
        return sys.stdin.buffer.read()
    try:
        return Path(spec[1:]).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {spec[1:]}: {exc.strerror}") from None


def cmd_wait(client: Client, args: argparse.Namespace, console: Console) -> int:
    return _wait(client, _ref(args.job), args.timeout, console, as_json=args.json)


def _wait(
    client: Client, ref: JobRef, timeout: float | None, console: Console, *, as_json: bool
) -> int:
    """Long-poll until the job ends: 0 done, 1 error or cancelled, 4 timed out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    live = console.is_terminal and not as_json
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not live,
    )
    task = bar.add_task(f"job {ref}", total=100)
    with bar:
        while True:
            poll = POLL_SECONDS
            if deadline is not None:
                poll = min(poll, max(deadline - time.monotonic(), 0.0))
            try:
                job = client.get(ref, wait=poll).raw
            except ApiError as exc:
                if exc.status == 410:
                    return _removed(exc.problem, ref, console, as_json)
                raise
            bar.update(
                task,
                completed=job.get("progress") or 0,
                description=f"job {job['id']} {job['status']}",
            )
            if job.get("finished"):
                break
            if deadline is not None and time.monotonic() >= deadline:
                return fail(
                    f"job {job['id']} is still {job['status']} after {timeout:g}s", EXIT_TIMEOUT
                )
    return _finished(job, console, as_json)


def _finished(job: Mapping[str, Any], console: Console, as_json: bool) -> int:
    code = EXIT_OK if job["status"] == "done" else EXIT_REFUSED
    if as_json:
        print_json(job)
        return code
    line = Text(f"job {job['id']} (tag {job.get('tag')}) ").append(_status(job["status"]))
    line.append(f" in {_duration(job.get('duration_seconds'))}")
    if job.get("error"):
        line.append(f": {job['error']}")
    console.print(line)
    if job["status"] == "done":
        _print_payload("result", job.get("response"), console)
    return code


def _removed(problem: Mapping[str, Any], ref: JobRef, console: Console, as_json: bool) -> int:
    """The job ended and was removed (remove on complete): its state is all that is left."""
    state = str(problem.get("job_status") or "finished")
    code = EXIT_OK if state == "done" else EXIT_REFUSED
    if as_json:
        print_json(problem)
        return code
    line = Text(f"job {problem.get('job_id') or ref} ").append(_status(state))
    line.append(" and removed on completion: its result was not kept")
    console.print(line)
    return code


# -- cancel, retry, attempts and prune -------------------------------------------------------


def cmd_cancel(client: Client, args: argparse.Namespace, console: Console) -> int:
    if (filters := _bulk(args)) is not None:
        return _print_bulk(client.cancel_matching(**filters), args.json, console)
    return _each(args, console, lambda ref: client.cancel(ref).raw, _cancelled)


def _cancelled(outcome: Mapping[str, Any]) -> str:
    said = {"cancelled": "cancelled", "cancel_requested": "cancel requested"}
    return f"job {outcome['id']}: {said.get(outcome['outcome'], outcome['outcome'])}"


def cmd_retry(client: Client, args: argparse.Namespace, console: Console) -> int:
    if (filters := _bulk(args)) is not None:
        return _print_bulk(client.retry_matching(**filters), args.json, console)
    return _each(
        args,
        console,
        lambda ref: client.retry(ref).raw,
        lambda job: f"job {job['id']}: retried, now {job['status']}",
    )


def _each(
    args: argparse.Namespace,
    console: Console,
    act: Callable[[JobRef], dict[str, Any]],
    said: Callable[[dict[str, Any]], str],
) -> int:
    """`act` on each job of `args.jobs` on its own: one refused is reported, the others done."""
    code, answers = EXIT_OK, []
    for spec in args.jobs:
        try:
            answer = act(_ref(spec))  # a tag is looked up first
        except ApiError as exc:
            if exc.status == 503:
                raise
            code = fail(f"job {spec}: {exc}", EXIT_REFUSED)
            continue
        answers.append(answer)
        if not args.json:
            console.print(Text(said(answer)))
    if args.json:
        print_json(answers)
    return code


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The --status, --endpoint, --created-after and --created-before given."""
    given = {
        "status": [s for s in (args.status or "").split(",") if s],
        "endpoint": args.endpoint,
        "created_after": args.created_after,
        "created_before": args.created_before,
    }
    return {name: value for name, value in given.items() if value}


def _bulk(args: argparse.Namespace) -> dict[str, Any] | None:
    """The filters of a bulk retry or cancel; None when jobs were named instead."""
    filters, flags = _filters(args), ", ".join(FILTER_FLAGS)
    if args.jobs and filters:
        raise UsageError(f"give jobs or filters ({flags}), not both")
    if not args.jobs and not filters:
        raise UsageError(f"give the jobs (ID|TAG ...), or at least one of {flags}")
    return filters or None


def _print_bulk(result: BulkResult, as_json: bool, console: Console) -> int:
    if as_json:
        print_json(result.raw)
        return EXIT_OK
    if not result.matched:
        console.print("no job matched")
    else:
        counts = ", ".join(
            f"{n} {outcome.replace('_', ' ')}" for outcome, n in result.outcomes.items() if n
        )
        plural = "" if result.matched == 1 else "s"
        console.print(f"{result.matched} job{plural} matched: {counts or 'none changed'}")
    if result.more:
        console.print("more jobs match: run the same command again for the next ones")
    return EXIT_OK


def cmd_attempts(client: Client, args: argparse.Namespace, console: Console) -> int:
    attempts = [attempt.raw for attempt in client.attempts(_ref(args.job))]
    if args.json:
        print_json(attempts)
        return EXIT_OK
    if not attempts:
        console.print(f"job {args.job} has not run yet")
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("ATTEMPT", "NODE", "STARTED", "DURATION", "OUTCOME", "ERROR"):
        table.add_column(name, justify="right" if name in ("ATTEMPT", "DURATION") else "left")
    for attempt in attempts:
        table.add_row(
            str(attempt["attempt"]),
            Text(attempt.get("node") or ""),
            _time(attempt.get("started_at")),
            _duration(attempt.get("duration_seconds")),
            _status(attempt.get("outcome") or "running"),
            Text(attempt.get("error") or ""),
        )
    console.print(table)
    return EXIT_OK


def cmd_prune(client: Client, args: argparse.Namespace, console: Console) -> int:
    asked = {s: getattr(args, s) for s in ("done", "error", "cancelled") if getattr(args, s)}
    result = client.prune(asked or None).raw
    if args.json:
        print_json(result)
        return EXIT_OK
    if result.get("skipped"):
        console.print("skipped: another node is pruning right now; try again shortly")
        return EXIT_OK
    applied: Mapping[str, str] = result.get("retention") or {}
    if not applied:
        console.print(
            "nothing pruned: the node keeps finished jobs forever; "
            "give --done, --error or --cancelled"
        )
        return EXIT_OK
    deleted: Mapping[str, int] = result.get("deleted") or {}
    total = int(result.get("total", sum(deleted.values())))
    parts = ", ".join(f"{n} {state}" for state, n in deleted.items() if n)
    kept = ", ".join(f"{state} {age}" for state, age in applied.items())
    what = f"deleted {total} job{'' if total == 1 else 's'}" + (f" ({parts})" if parts else "")
    console.print(f"{what}; retention: {kept}")
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "show": cmd_show,
    "create": cmd_create,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
    "retry": cmd_retry,
    "attempts": cmd_attempts,
    "prune": cmd_prune,
}

# -- formatting ------------------------------------------------------------------------------


def _status(state: str) -> Text:
    return Text(state, style=STYLES.get(state, ""))


def _time(value: str | None) -> str:
    """An RFC 3339 time from the node, in local time to the second."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
