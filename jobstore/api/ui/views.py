"""What the dashboard's templates show: jobs, counts and payloads turned into display values.

Pure functions over the core's values; no HTTP here. Templates escape everything they print.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jobstore.api.documents import job_detail, job_summary
from jobstore.domain.models import FINAL_STATES, Job, JobState
from jobstore.endpoints.registry import EndpointRegistry

# A payload larger than this is not decoded at all: only its first characters are shown.
DECODE_LIMIT = 256 * 1024
# At most this many characters of a request or response appear on the page.
DISPLAY_LIMIT = 20_000
# Error messages in the job list are cut to this length (the job page shows them whole).
LIST_ERROR_CHARS = 120
# The status filter's choices beyond the single states.
STATE_GROUPS: dict[str, tuple[JobState, ...]] = {
    "active": (JobState.QUEUED, JobState.RUNNING),
    "finished": (JobState.DONE, JobState.ERROR, JobState.CANCELLED),
}
CANCEL_OUTCOMES = {
    "cancelled": "Cancelled.",
    "cancel_requested": "Cancel requested: the job stops within a few seconds.",
    "already_done": "The job had already finished; nothing was cancelled.",
    "not_found": "No such job.",
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


def row_view(job: Job) -> dict[str, Any]:
    """One row of the job list."""
    row = job_summary(job)
    error = row["error"]
    if error and len(error) > LIST_ERROR_CHARS:
        error = error[: LIST_ERROR_CHARS - 1] + "…"
    return {
        **row,
        "error": error,
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
    if cut_size is not None:
        shown = min(len(text), DISPLAY_LIMIT)
        note = f"too large to decode ({cut_size:,} bytes): showing the first {shown:,} characters"
        return PayloadView(encoding, text[:DISPLAY_LIMIT], cut_size, note)
    if len(text) > DISPLAY_LIMIT:
        return PayloadView(encoding, text[:DISPLAY_LIMIT], len(text), note)
    return PayloadView(encoding, text, None, note)


def status_view(job: Job, now: datetime) -> dict[str, Any]:
    """The live part of the job page: state, progress, timings, status map (no payloads)."""
    summary = job_summary(job)
    return {
        **summary,
        "created": short_time(summary["created_at"]),
        "started": short_time(summary["started_at"]),
        "updated": short_time(summary["updated_at"]),
        "finished_time": short_time(summary["finished_at"]),
        "duration": format_duration(summary["duration_seconds"]),
        "running_for": format_duration(running_for(job, now)),
        "active": job.status not in FINAL_STATES,
    }


def detail_view(job: Job, registry: EndpointRegistry, now: datetime) -> dict[str, Any]:
    """Everything the job page shows."""
    trimmed, cut = _trimmed(job)
    detail = job_detail(trimmed, registry)
    return {
        **status_view(job, now),
        "request_view": payload_view(detail["request"], cut.get("request")),
        "response_view": payload_view(detail["response"], cut.get("response")),
        "options_text": json.dumps(detail["options"], indent=2, ensure_ascii=False),
    }
