"""The options of `jobstore jobs ...`, with help written for the people who run them."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from jobstore.domain.durations import parse_duration
from jobstore.domain.errors import ConfigError
from jobstore.domain.models import ACTIVE_STATES, RETRYABLE_STATES, JobState

DEFAULT_URL = "http://127.0.0.1:9191"
STATES = tuple(state.value for state in JobState)
RETRY_STATES = tuple(s for s in STATES if s in RETRYABLE_STATES)  # finished, may run again
CANCEL_STATES = tuple(s for s in STATES if s in ACTIVE_STATES)  # not finished yet
FILTER_FLAGS = ("--status", "--endpoint", "--created-after", "--created-before")
BULK_FILTERS = "instead of jobs: every job they match (at least one filter; they combine)"
DESCRIPTION = """\
Create, follow, list, cancel and retry jobs on a running node (its REST API, /api/v1).

examples:
  jobstore jobs create /sleep --data '{"seconds": 5}' --tag nightly-1
  jobstore jobs wait nightly-1
  jobstore jobs list --status running,queued
  jobstore jobs show 42
  jobstore jobs cancel 42 nightly-1
  jobstore jobs retry --status error --endpoint /resize
  jobstore jobs attempts 42
  jobstore jobs prune --done 7d

The node is http://127.0.0.1:9191 unless --url or JOBSTORE_URL says otherwise; sign in with
--token (or JOBSTORE_TOKEN) or --user (JOBSTORE_USER and JOBSTORE_PASSWORD).
"""
EPILOG = """\
exit status: 0 ok; 1 the node refused (not found, conflict, not signed in ...) or the job
`wait` followed ended error or cancelled; 2 a usage error; 3 the node could not be reached or
answered 503; 4 `wait --timeout` ran out first.
"""


def _states_of(allowed: Sequence[str], verb: str = "") -> Callable[[str], str]:
    """--status: comma-separated job states, each one of `allowed` (what can be `verb`ed)."""

    def states(value: str) -> str:
        given = [s.strip() for s in value.split(",") if s.strip()]
        wrong = [s for s in given if s not in allowed]
        if not given or any(s not in STATES for s in wrong):
            unknown = [s for s in wrong if s not in STATES]
            raise argparse.ArgumentTypeError(
                f"unknown state {', '.join(map(repr, unknown)) or repr(value)}; "
                f"choose from {', '.join(allowed)}"
            )
        if wrong:
            raise argparse.ArgumentTypeError(
                f"{', '.join(map(repr, wrong))} jobs cannot be {verb}; "
                f"choose from {', '.join(allowed)}"
            )
        return ",".join(given)

    states.__name__ = "states"  # argparse names the type in some of its messages
    return states


def _moment(value: str) -> datetime:
    """--run-at, --created-after, --created-before: an RFC 3339 time with a time zone."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text) if "T" in text.upper() else None
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time with a time zone, like 2026-12-06T18:00:00Z, got {value!r}"
        )
    return when


def _span(value: str) -> float:
    """--delay, --backoff: seconds (90, 0.5) or a duration (30s, 15m, 2h, 1d), 0 or more."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            span = parse_duration(text)
        except ConfigError:
            span = None
        seconds = math.nan if span is None else span.total_seconds()
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration like 30s, 15m or 2h, got {value!r}"
        )
    return seconds


def _positive_span(value: str) -> float:
    """--run-timeout: a _span above 0."""
    seconds = _span(value)
    if seconds == 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0, got {value!r}")
    return seconds


def _age(value: str) -> str:
    """--done/--error/--cancelled of prune: a retention like 7d or 12h."""
    try:
        parse_duration(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value.strip().lower() or "forever"


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return number


def connection_options(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The options every command that talks to a node takes (jobs, schedules, limits,
    endpoints); defaults come from JOBSTORE_* variables."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    url = env.get("JOBSTORE_URL") or DEFAULT_URL
    group.add_argument("--url", default=url, help=f"the node [JOBSTORE_URL; default {DEFAULT_URL}]")
    group.add_argument(
        "--token", help="an API token, sent as a Bearer token [JOBSTORE_TOKEN, which ps cannot see]"
    )
    group.add_argument(
        "--user",
        help="sign in with HTTP Basic as USER [JOBSTORE_USER; password: JOBSTORE_PASSWORD]",
    )
    group.add_argument(
        "--password-stdin", action="store_true", help="read the --user's password from stdin"
    )
    try:
        timeout = _positive(env.get("JOBSTORE_REQUEST_TIMEOUT") or "30")
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"JOBSTORE_REQUEST_TIMEOUT: {exc}") from None
    group.add_argument(
        "--request-timeout",
        type=_positive,
        default=timeout,
        metavar="SECONDS",
        help="give up on a request after this long [JOBSTORE_REQUEST_TIMEOUT; default 30]",
    )
    group.add_argument("--json", action="store_true", help="print the node's JSON, not a table")
    return parent


def command_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    env: Mapping[str, str],
    name: str,
    summary: str,
    description: str,
    epilog: str,
) -> Callable[[str, str, str], argparse.ArgumentParser]:
    """Add the group `name` (jobs, schedules, limits) to the top-level subparsers.

    Returns `command(name, summary, examples)`, which adds one of its commands with the
    connection options; the command's name lands in `args.<name>_command`.
    """
    common = [connection_options(env)]
    group = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group.set_defaults(_parser=group)
    cmds = group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, examples: str) -> argparse.ArgumentParser:
        parser = cmds.add_parser(
            name,
            parents=common,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\nexamples:\n{examples}",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(_parser=parser)
        return parser

    return command


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """Add `jobs` and its commands to the top-level subparsers."""
    command = command_group(
        sub,
        env,
        "jobs",
        "create, follow, list, cancel and retry jobs on a running node",
        DESCRIPTION,
        EPILOG,
    )

    ls = command(
        "list",
        "list jobs, newest first",
        "  jobstore jobs list\n  jobstore jobs list --status error --endpoint /sleep --all",
    )
    _add_filters(ls, STATES)
    ls.add_argument("--tag", help="only the job with this tag")
    ls.add_argument("--limit", type=int, default=50, help="jobs per page, 1-500 (default 50)")
    ls.add_argument("--before", type=int, metavar="ID", help="only jobs older than job ID")
    ls.add_argument("--all", action="store_true", help="follow the pages to the oldest job")

    show = command(
        "show",
        "show a job: its state, progress, request and result",
        "  jobstore jobs show 42\n  jobstore jobs show nightly-1 --json",
    )
    show.add_argument("job", metavar="ID|TAG", help="a job id (all digits) or a tag")

    create = command(
        "create",
        "create a job",
        "  jobstore jobs create /sleep --data '{\"seconds\": 5}' --tag nightly-1 --wait\n"
        "  jobstore jobs create /echo --data @request.json\n"
        "  jobstore jobs create /resize --data-base64 @image.avro --encoding binary",
    )
    create.add_argument("endpoint", help="the endpoint to run, e.g. /sleep")
    data = create.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON|@FILE", help="the request as JSON (@- for stdin)")
    data.add_argument(
        "--data-base64", metavar="B64|@FILE", help="a binary request: base64, or a file's bytes"
    )
    create.add_argument("--encoding", choices=("json", "binary", "snappy"))
    create.add_argument("--tag", help="a tag for the job; sending the same create again is safe")
    create.add_argument(
        "--remove-on-complete", action="store_true", help="delete the job when it ends"
    )
    create.add_argument("--wait", action="store_true", help="then wait for it, like `jobs wait`")
    create.add_argument("--timeout", type=_positive, metavar="SECONDS", help="for --wait")
    engine = create.add_argument_group(
        "when and how it runs",
        "DURATION is seconds (90) or a number with s, m, h, d or w (30s, 15m, 2h);\n"
        "an option not given is the endpoint's default, then the node's",
    )
    start = engine.add_mutually_exclusive_group()
    start.add_argument(
        "--run-at", type=_moment, metavar="TIME", help="start no earlier than TIME (RFC 3339)"
    )
    start.add_argument("--delay", type=_span, metavar="DURATION", help="start DURATION from now")
    engine.add_argument(
        "--priority", type=int, metavar="N", help="-1000 to 1000; higher starts first (default 0)"
    )
    engine.add_argument("--max-attempts", type=int, metavar="N", help="run the job at most N times")
    engine.add_argument(
        "--retry-errors",
        action=argparse.BooleanOptionalAction,
        help="run a failed or timed-out attempt again while attempts are left",
    )
    engine.add_argument(
        "--backoff",
        type=_span,
        metavar="DURATION",
        help="wait this long before the first retry, twice as long before each next one",
    )
    engine.add_argument(
        "--run-timeout",
        type=_positive_span,
        metavar="DURATION",
        help="stop a run that takes longer; it ends as a failed attempt (timeout)",
    )

    wait = command(
        "wait",
        "follow a job to its end, with a progress bar",
        "  jobstore jobs wait 42\n  jobstore jobs wait nightly-1 --timeout 60",
    )
    wait.add_argument("job", metavar="ID|TAG", help="a job id (all digits) or a tag")
    wait.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="give up after this long (exit 4)"
    )

    cancel = command(
        "cancel",
        "cancel jobs: scheduled and queued ones at once, running ones as soon as they stop",
        "  jobstore jobs cancel 42\n  jobstore jobs cancel 42 43 nightly-1\n"
        "  jobstore jobs cancel --status queued,scheduled --endpoint /resize",
    )
    cancel.add_argument("jobs", metavar="ID|TAG", nargs="*", help="the jobs, or filters instead")
    _add_filters(cancel, CANCEL_STATES, "cancelled", BULK_FILTERS)

    retry = command(
        "retry",
        "run jobs that ended error or cancelled again, as a new attempt",
        "  jobstore jobs retry 42\n  jobstore jobs retry 42 43 nightly-1\n"
        "  jobstore jobs retry --status error --endpoint /resize "
        "--created-after 2026-12-06T00:00:00Z",
    )
    retry.add_argument("jobs", metavar="ID|TAG", nargs="*", help="the jobs, or filters instead")
    _add_filters(retry, RETRY_STATES, "retried", BULK_FILTERS)

    attempts = command(
        "attempts",
        "list the runs of a job: node, times, how each ended",
        "  jobstore jobs attempts 42\n  jobstore jobs attempts nightly-1 --json",
    )
    attempts.add_argument("job", metavar="ID|TAG", help="a job id (all digits) or a tag")

    prune = command(
        "prune",
        "delete finished jobs past their retention now (default: the node's retention)",
        "  jobstore jobs prune\n  jobstore jobs prune --done 7d --error 30d",
    )
    for state in ("done", "error", "cancelled"):
        prune.add_argument(
            f"--{state}",
            type=_age,
            metavar="AGE",
            help=f"delete '{state}' jobs that finished more than AGE ago (like 7d, 12h, 0s)",
        )


def _add_filters(
    parser: argparse.ArgumentParser, states: Sequence[str], verb: str = "", about: str = ""
) -> None:
    """--status, --endpoint, --created-after and --created-before: which jobs; they combine."""
    group = parser.add_argument_group("filters", about or None)
    group.add_argument(
        "--status", type=_states_of(states, verb), help=f"comma-separated: {', '.join(states)}"
    )
    group.add_argument("--endpoint", help="only jobs of this endpoint")
    group.add_argument(
        "--created-after", type=_moment, metavar="TIME", help="only jobs created after TIME"
    )
    group.add_argument(
        "--created-before", type=_moment, metavar="TIME", help="only jobs created before TIME"
    )
