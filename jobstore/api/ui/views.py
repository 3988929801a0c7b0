"""What the dashboard's templates show: jobs, counts, payloads, schedules and concurrency
limits turned into display values.

Pure functions over the core's values; no HTTP here. Templates escape everything they print.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobstore.api.documents import attempt_document, job_detail, job_summary
from jobstore.codecs import jsontext
from jobstore.core.limits import MAX_LIMIT, KeyState
from jobstore.core.schedules import NAME as SCHEDULE_NAME
from jobstore.domain.errors import BadOption
from jobstore.domain.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    RETRYABLE_STATES,
    Attempt,
    Job,
    JobState,
)
from jobstore.domain.options import concurrency_key
from jobstore.domain.schedules import Schedule
from jobstore.endpoints.registry import EndpointRegistry

# A payload larger than this is not decoded at all: only its first characters are shown.
DECODE_LIMIT = 256 * 1024
# At most this many characters of a request or response appear on the page.
DISPLAY_LIMIT = 20_000
# Error messages in the job list are cut to this length (the job page shows them whole).
LIST_ERROR_CHARS = 120
# The status filter's choices beyond the single states.
STATE_GROUPS: dict[str, tuple[JobState, ...]] = {
    "active": ACTIVE_STATES,
    "finished": (JobState.DONE, JobState.ERROR, JobState.CANCELLED),
}
CANCEL_OUTCOMES = {
    "cancelled": "Cancelled.",
    "cancel_requested": "Cancel requested: the job stops within a few seconds.",
    "already_done": "The job had already finished; nothing was cancelled.",
    "not_found": "No such job.",
}
RETRY_OUTCOMES = {
    "retried": "Retried: the job is queued again; its next run is a new attempt.",
    "not_retryable": (
        "Only a job that ended error or cancelled can be retried; nothing was changed."
    ),
}
# What each bulk action can touch, whatever the status filter says (as JobService.bulk_action).
BULK_STATES: dict[str, frozenset[JobState]] = {
    "cancel": frozenset(ACTIVE_STATES),
    "retry": RETRYABLE_STATES,
}


@dataclass(frozen=True, slots=True)
class CountView:
    state: str
    number: int
    label: str  # "1,234" or "10,000+"
    url: str
    selected: bool


@dataclass(frozen=True, slots=True)
class PayloadView:
    encoding: str
    text: str
    truncated_from: int | None  # the full length in characters, when only a part is shown
    note: str | None = None


def format_count(number: int, cap: int) -> str:
    """Counts are read up to cap + 1 rows: more than `cap` shows as "cap+"."""
    return f"{cap:,}+" if number > cap else f"{number:,}"


def count_views(counts: Mapping[JobState, int], cap: int, selected: str | None) -> list[CountView]:
    return [
        CountView(
            state=state.value,
            number=counts.get(state, 0),
            label=format_count(counts.get(state, 0), cap),
            url="/ui?" + urlencode({"status": state.value}),
            selected=selected == state.value,
        )
        for state in JobState
    ]


def parse_states(value: str) -> tuple[JobState, ...] | None:
    """The status filter: '' for any, a state, or a group; ValueError for anything else."""
    if not value:
        return None
    if value in STATE_GROUPS:
        return STATE_GROUPS[value]
    return (JobState(value),)


def short_time(when: str | None) -> str:
    """'2026-11-22T08:24:40.123456Z' -> '2026-11-22 08:24:40' (UTC, to the second)."""
    if not when:
        return ""
    return when.replace("T", " ")[:19]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def running_for(job: Job, now: datetime) -> float | None:
    """Seconds since a running job started (its duration so far)."""
    if job.started_at is None or job.status in FINAL_STATES:
        return None
    return max(0.0, (now - job.started_at).total_seconds())


def _cut(text: str | None) -> str | None:
    if text and len(text) > LIST_ERROR_CHARS:
        return text[: LIST_ERROR_CHARS - 1] + "…"
    return text


def _last_error(job: Job, summary: Mapping[str, Any]) -> str | None:
    """Why the previous attempt of an unfinished job failed (it waits for, or runs, a retry)."""
    if job.status in FINAL_STATES:
        return None
    return summary["last_error"] or None


def row_view(job: Job) -> dict[str, Any]:
    """One row of the job list."""
    row = job_summary(job)
    return {
        **row,
        "error": _cut(row["error"]),
        "last_error": _cut(_last_error(job, row)),
        "starts": short_time(row["run_at"]) if job.status is JobState.SCHEDULED else "",
        "created": short_time(row["created_at"]),
        "duration": format_duration(row["duration_seconds"]),
        "active": job.status not in FINAL_STATES,
    }


def _trimmed(job: Job) -> tuple[Job, dict[str, int]]:
    """The job with over-large payloads cut to DECODE_LIMIT, and the full sizes of those cut."""
    cut: dict[str, int] = {}
    changes: dict[str, Any] = {}
    for side in ("request", "response"):
        text = getattr(job, f"{side}_text")
        data = getattr(job, f"{side}_data")
        if text is not None and len(text) > DECODE_LIMIT:
            cut[side] = len(text)
            changes[f"{side}_text"] = text[:DECODE_LIMIT]
        if data is not None and len(data) > DECODE_LIMIT:
            cut[side] = len(data)
            changes[f"{side}_data"] = data[:DECODE_LIMIT]
    return (dataclasses.replace(job, **changes) if changes else job), cut


def payload_view(doc: Mapping[str, Any] | None, cut_size: int | None) -> PayloadView | None:
    """A request or response document (see documents.payload_document) as text to show."""
    if doc is None:
        return None
    encoding = str(doc.get("encoding", ""))
    note = None
    if "json" in doc:
        text = json.dumps(doc["json"], indent=2, ensure_ascii=False)
        if "base64" in doc:
            note = f"{encoding} payload, decoded with the endpoint's Avro schema"
    elif "text" in doc:
        text = str(doc["text"])
        if cut_size is None:
            note = "not valid JSON: shown as stored"
    else:
        text = str(doc.get("base64", ""))
        note = f"{encoding} payload, shown as base64"
    text = jsontext.storable_text(text)  # an Avro string may hold a NUL; a page cannot
    if cut_size is not None:
        shown = min(len(text), DISPLAY_LIMIT)
        note = f"too large to decode ({cut_size:,} bytes): showing the first {shown:,} characters"
        return PayloadView(encoding, text[:DISPLAY_LIMIT], cut_size, note)
    if len(text) > DISPLAY_LIMIT:
        return PayloadView(encoding, text[:DISPLAY_LIMIT], len(text), note)
    return PayloadView(encoding, text, None, note)


def seconds_setting(seconds: float | None) -> str:
    """A job's backoff or timeout as set: 30.0 -> '30 s', 0.25 -> '0.25 s',
    7200 -> '7,200 s (2 h 0 min)'."""
    if seconds is None:
        return ""
    text = f"{seconds:,.0f} s" if seconds == int(seconds) else f"{seconds:,g} s"
    return f"{text} ({format_duration(seconds)})" if seconds >= 60 else text


def retry_setting(job: Job) -> str:
    """What happens when an attempt fails: the job's retry_errors and backoff_seconds."""
    if not job.retry_errors:
        return "no: a failed attempt ends the job"
    first = seconds_setting(job.backoff_seconds) if job.backoff_seconds is not None else None
    wait = f"after {first}" if first else "after the default backoff"
    return f"yes: the next attempt starts {wait}, doubling each time"


def status_view(job: Job, now: datetime) -> dict[str, Any]:
    """The live part of the job page: state, progress, timings, run settings, status map
    (no payloads)."""
    summary = job_summary(job)
    starts_in = None  # seconds until a scheduled job's run_at
    if job.status is JobState.SCHEDULED and job.run_at is not None:
        starts_in = (job.run_at - now).total_seconds()
    return {
        **summary,
        "created": short_time(summary["created_at"]),
        "started": short_time(summary["started_at"]),
        "updated": short_time(summary["updated_at"]),
        "finished_time": short_time(summary["finished_at"]),
        "duration": format_duration(summary["duration_seconds"]),
        "running_for": format_duration(running_for(job, now)),
        "run_at_time": short_time(summary["run_at"]),
        "starts": short_time(summary["run_at"]) if starts_in is not None else "",
        # Nothing once due: the scheduler moves it to the queue within a moment.
        "starts_in": format_duration(starts_in) if starts_in and starts_in > 0 else "",
        "last_error": _last_error(job, summary),
        "retry_text": retry_setting(job),
        "timeout_text": seconds_setting(job.timeout_seconds) or "none",
        "active": job.status not in FINAL_STATES,
        "retryable_now": job.status in RETRYABLE_STATES,
        "concurrency_key": job.concurrency_key,
    }


def attempt_views(attempts: list[Attempt], now: datetime) -> list[dict[str, Any]]:
    """The job page's attempts table: one row per run, first to last."""
    rows = []
    for attempt in attempts:
        doc = attempt_document(attempt)
        so_far = None
        if attempt.finished_at is None:
            so_far = max(0.0, (now - attempt.started_at).total_seconds())
        rows.append(
            {
                **doc,
                "started": short_time(doc["started_at"]),
                "finished": short_time(doc["finished_at"]),
                "duration": format_duration(doc["duration_seconds"]),
                "so_far": format_duration(so_far),
                "outcome": doc["outcome"] or "running",
            }
        )
    return rows


def detail_view(job: Job, registry: EndpointRegistry, now: datetime) -> dict[str, Any]:
    """Everything the job page shows."""
    trimmed, cut = _trimmed(job)
    detail = job_detail(trimmed, registry)
    return {
        **status_view(job, now),
        "request_view": payload_view(detail["request"], cut.get("request")),
        "response_view": payload_view(detail["response"], cut.get("response")),
        "options_text": json.dumps(detail["options"], indent=2, ensure_ascii=False),
        "from_schedule": fired_by(job),
    }


# -- bulk actions ----------------------------------------------------------------------------


def bulk_applies(action: str, states: tuple[JobState, ...] | None) -> bool:
    """Whether `action` can touch any job the status filter `states` selects."""
    return states is None or bool(BULK_STATES[action] & set(states))


def filter_words(status: str, endpoint: str) -> str:
    """The list's filter in words, for a confirmation: "status error, endpoint /fail"."""
    words = [f"status {status}" if status else "", f"endpoint {endpoint}" if endpoint else ""]
    return ", ".join(w for w in words if w)


def bulk_params(
    action: str, outcomes: Mapping[str, int], matched: int, more: bool
) -> dict[str, Any]:
    """What a bulk action did, as query parameters for the list it redirects to (zeros left
    out): {"bulk": "cancel", "cancelled": 3, "requested": 1, "more": 1}."""
    if action == "cancel":
        done = {
            "cancelled": outcomes.get("cancelled", 0),
            "requested": outcomes.get("cancel_requested", 0),
        }
    else:
        done = {"retried": outcomes.get("retried", 0)}
    numbers = {**done, "skipped": max(0, matched - sum(done.values())), "more": int(more)}
    return {"bulk": action, **{name: n for name, n in numbers.items() if n}}


def _jobs(n: int) -> str:
    return f"{n:,} job" if n == 1 else f"{n:,} jobs"


def bulk_notice(params: Mapping[str, str]) -> str | None:
    """The sentence that says what a bulk action did (see bulk_params); None without one."""
    action = params.get("bulk", "")
    if action not in BULK_STATES:
        return None
    names = ("cancelled", "requested") if action == "cancel" else ("retried",)
    numbers = {}
    for name in (*names, "skipped"):
        value = params.get(name, "0")
        if not (value.isascii() and value.isdigit() and len(value) <= 12):
            return None
        numbers[name] = int(value)
    parts = []
    if action == "cancel":
        if numbers["cancelled"]:
            parts.append(f"Cancelled {_jobs(numbers['cancelled'])}.")
        if numbers["requested"]:
            n = numbers["requested"]
            running = "running job" if n == 1 else "running jobs"
            parts.append(f"Asked {n:,} {running} to stop (within a few seconds).")
        if not parts:
            parts.append("No scheduled, queued or running job matched: nothing was cancelled.")
    elif numbers["retried"]:
        parts.append(f"Retried {_jobs(numbers['retried'])}: queued again, as new attempts.")
    else:
        parts.append("No error or cancelled job matched: nothing was retried.")
    if skipped := numbers["skipped"]:
        were = "was" if skipped == 1 else "were"
        parts.append(f"{_jobs(skipped)} changed state meanwhile and {were} left alone.")
    if params.get("more") == "1":
        button = "Cancel" if action == "cancel" else "Retry"
        parts.append(f"More jobs match than one press handles: press {button} again for the rest.")
    return " ".join(parts)


# -- schedules -------------------------------------------------------------------------------

SCHEDULE_DONE = {
    "pause": "Paused {name}: it does not fire until it is resumed.",
    "resume": "Resumed {name}: it fires at its next fire time; what it missed is not made up.",
    "fire": "Fired {name} now, outside its fire times:",
}


@dataclass(frozen=True, slots=True)
class LastJob:
    """A schedule's last job as the schedules page shows it."""

    job_id: int
    status: str | None  # None: the job is gone without a trace (or not the caller's)
    removed: bool = False  # removed on completion: `status` is its tombstone's


def utc_text(moment: datetime | None) -> str:
    """An instant as the dashboard shows times: '2026-11-22 08:24:40' (UTC, to the second)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def zone_text(moment: datetime | None, zone: str) -> str:
    """An instant as the wall time of a schedule's zone ('2026-11-22 09:24:40 CET'); '' for
    UTC or a zone this machine does not know."""
    if moment is None or zone == "UTC":
        return ""
    try:
        return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")
    except (ZoneInfoNotFoundError, ValueError):
        return ""


def fired_by(job: Job) -> dict[str, str] | None:
    """The schedule a job came from (its options `schedule` and `fire_time`), or None; no
    fire time for a job fired by hand ("fire now")."""
    name = job.options.get("schedule")
    if not name:
        return None
    fire_time = job.options.get("fire_time", "")
    try:
        shown = utc_text(datetime.fromisoformat(fire_time)) if fire_time else ""
    except ValueError:
        shown = fire_time  # not written by a schedule: shown as stored (escaped)
    return {"name": name, "fire_time": shown}


def schedule_view(
    schedule: Schedule, last: LastJob | None, now: datetime, served: bool
) -> dict[str, Any]:
    """One row of the schedules page. `served`: this node has the schedule's endpoint."""
    s = schedule
    next_in = None
    if s.enabled and s.next_fire_at is not None:
        next_in = max(0.0, (s.next_fire_at - now).total_seconds())
    return {
        "name": s.name,
        "endpoint": s.endpoint,
        "served": served,
        "cron": s.cron,
        "timezone": s.timezone,
        "every": seconds_setting(s.every_seconds),
        "start": utc_text(s.start_at),
        "end": utc_text(s.end_at),
        "misfire": s.misfire.value,
        "enabled": s.enabled,
        "next": utc_text(s.next_fire_at) if s.enabled else "",
        "next_local": zone_text(s.next_fire_at, s.timezone) if s.enabled and s.cron else "",
        "next_in": format_duration(next_in) if next_in else "",
        "last_fire": utc_text(s.last_fire_at),
        "last": last,
        "source": s.source,
        "created_by": s.created_by,
    }


def schedule_notice(params: Mapping[str, str]) -> dict[str, Any] | None:
    """What a pause, resume or fire did, from the query of the page it redirected to:
    {"text": ..., "job_id": 42 or None}; None without one (or with a forged one)."""
    done = params.get("done", "")
    name = params.get("name", "")
    if done not in SCHEDULE_DONE or not SCHEDULE_NAME.fullmatch(name):
        return None
    job_id = None
    if done == "fire":
        raw = params.get("job", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
            return None
        job_id = int(raw)
    return {"text": SCHEDULE_DONE[done].format(name=name), "job_id": job_id}


# -- concurrency limits ----------------------------------------------------------------------

LIMIT_DONE = {
    "set": "Set the limit of key {key} to {n}.",
    "delete": (
        "Removed the named limit of key {key}: it falls back to its endpoints' "
        "concurrency_limit, if they declare one."
    ),
}


def key_view(state: KeyState, updated_by: str | None = None) -> dict[str, Any]:
    """One row of the limits page: running against the limit, and where the limit comes from
    ("named", "endpoint", or "none": unlimited)."""
    limit = state.limit
    source = "named" if state.named else ("endpoint" if limit is not None else "none")
    return {
        "key": state.key,
        "running": f"{state.running:,}",
        "limit": "\u2013" if limit is None else f"{limit:,}",
        "at_limit": limit is not None and state.running >= limit,
        "held": limit == 0,
        "queued": f"{state.queued:,}",
        "source": source,
        "updated": utc_text(state.updated_at),
        "updated_by": updated_by,
    }


def limit_notice(params: Mapping[str, str]) -> str | None:
    """What a set or a remove did, from the query of the page it redirected to; None without
    one (or with a forged one: the key must be a key, the number a limit)."""
    done = params.get("done", "")
    if done not in LIMIT_DONE:
        return None
    try:
        key = concurrency_key(params.get("key", ""), "key")
    except BadOption:
        return None
    if key is None:
        return None
    n = 0
    if done == "set":
        raw = params.get("n", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 7 and int(raw) <= MAX_LIMIT):
            return None
        n = int(raw)
    return LIMIT_DONE[done].format(key=key, n=f"{n:,}")
