"""Reading REST requests: JSON bodies, query strings and headers, naming every bad field.

Each parser returns a plain value or raises one `invalid-request` problem that lists all the
fields it found wrong, so a client fixes its request in one round trip.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobstore.api.documents import iso
from jobstore.api.rest.problems import FieldError, Problem, invalid
from jobstore.codecs import jsontext
from jobstore.domain.durations import parse_duration
from jobstore.domain.errors import ConfigError, DecodeError
from jobstore.domain.inputs import DEFAULT_MAX_NESTING, BadInput, TooDeep
from jobstore.domain.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    RETRYABLE_STATES,
    Encoding,
    JobQuery,
    JobState,
    Payload,
    is_valid_tag,
)

MAX_JOB_ID = 2**63 - 1  # ids are BIGINT: a larger number can name no job
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# The engine's options a create may give, with the JSON type each must have ("time": an RFC 3339
# string, read as the listing reads its times; "string": a non-empty one); their ranges (and
# which combinations are allowed) are the core's to check (domain/options.py).
OPTION_TYPES = {
    "run_at": "time",
    "delay_seconds": "number",
    "priority": "integer",
    "max_attempts": "integer",
    "retry_errors": "boolean",
    "backoff_seconds": "number",
    "timeout_seconds": "number",
    "concurrency_key": "string",
}
_TYPE_RULES = {
    "time": "must be an RFC 3339 time with a time zone, e.g. 2026-12-06T18:00:00Z",
    "number": "must be a number of seconds",
    "integer": "must be an integer",
    "boolean": "must be true or false",
    "string": "must be a non-empty string",
}
CREATE_FIELDS = (
    "endpoint",
    "payload",
    "payload_base64",
    "encoding",
    "tag",
    "remove_on_complete",
    *OPTION_TYPES,
)
# What a bulk retry or cancel may filter on; it must give at least one.
BULK_FIELDS = ("status", "endpoint", "created_after", "created_before")
# The states each bulk action can touch: asking for another one is a mistake, not "no jobs".
BULK_STATES = {
    "retry": tuple(s for s in JobState if s in RETRYABLE_STATES),
    "cancel": ACTIVE_STATES,
}
TAG_RULE = "1 to 128 letters, digits, '_' or '-'"
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:(?P<second>\d{2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
)
JSON_MEDIA_TYPES = ("application/json",)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A valid POST /api/v1/jobs."""

    endpoint: str
    payload: Payload
    payload_field: str  # "payload" or "payload_base64": where a payload error points
    tag: str | None
    remove_on_complete: bool
    run_options: dict[str, Any]  # the engine's options given (typed JSON values), by name

    def options(self) -> dict[str, Any]:
        """The job options the core takes (Kinetica's names; the engine's as JSON values)."""
        options: dict[str, Any] = {"job_tag": self.tag} if self.tag else {}
        if self.remove_on_complete:
            options["remove_job_on_complete"] = "true"
        return {**options, **self.run_options}


@dataclass(frozen=True, slots=True)
class ListRequest:
    """A valid GET /api/v1/jobs: the filters, and the page size."""

    query: JobQuery
    limit: int


def check_json_media_type(content_type: str | None) -> None:
    """A body must be JSON; a missing Content-Type is read as JSON (curl users forget it)."""
    if content_type is None or not content_type.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_MEDIA_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise Problem(
        "unsupported-media-type",
        f"the body must be application/json, not {media or content_type!r}",
        {"accepted": list(JSON_MEDIA_TYPES)},
    )


def parse_json(body: bytes, max_nesting: int = DEFAULT_MAX_NESTING) -> Any:
    """The body as JSON, checked as all JSON from outside is (`jsontext.loads`). It may nest
    one level deeper than a payload: it wraps one."""
    try:
        return jsontext.loads(body, what="the body", max_nesting=max_nesting + 1)
    except BadInput as exc:  # name the field it was found in
        field = exc.name if exc.name != "the body" else "body"
        why = exc.reason
        if isinstance(exc, TooDeep):
            why = f"nests too deeply: a payload nests at most {max_nesting} levels"
        raise invalid([FieldError("body", field, why)]) from None
    except DecodeError as exc:  # "the body is not valid JSON: ..."
        raise invalid([FieldError("body", "body", str(exc).removeprefix("the body is "))]) from None


def parse_create(body: Any, idempotency_key: str | None) -> CreateRequest:
    """Check a create body (and the Idempotency-Key header) and build the job's payload."""
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "body", "must be a JSON object")])
    errors = [
        FieldError("body", name, f"unknown field; known fields are {', '.join(CREATE_FIELDS)}")
        for name in body
        if name not in CREATE_FIELDS
    ]

    endpoint = body.get("endpoint")
    if endpoint is None:
        errors.append(FieldError("body", "endpoint", "required"))
    elif not isinstance(endpoint, str) or not endpoint:
        errors.append(FieldError("body", "endpoint", "must be a non-empty string"))

    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or not is_valid_tag(tag)):
        errors.append(FieldError("body", "tag", f"must be {TAG_RULE}"))
        tag = None
    if idempotency_key is not None:
        if not is_valid_tag(idempotency_key):
            errors.append(FieldError("header", "Idempotency-Key", f"must be {TAG_RULE}"))
        elif tag is not None and tag != idempotency_key:
            errors.append(
                FieldError("header", "Idempotency-Key", "differs from the body's tag; send one")
            )
        else:
            tag = idempotency_key

    remove = body.get("remove_on_complete", False)
    if not isinstance(remove, bool):
        errors.append(FieldError("body", "remove_on_complete", "must be true or false"))

    run_options = parse_options(body, OPTION_TYPES, errors)
    payload, payload_field = parse_payload(body, errors)
    if errors or payload is None:
        raise invalid(errors)
    assert isinstance(endpoint, str)
    return CreateRequest(endpoint, payload, payload_field, tag, remove is True, run_options)


def parse_options(
    body: dict[str, Any], types: Mapping[str, str], errors: list[FieldError]
) -> dict[str, Any]:
    """The engine's options of `types` in `body`, each of its JSON type; null means not given."""
    options: dict[str, Any] = {}
    for name, kind in types.items():
        value = body.get(name)
        if value is None:
            continue
        typed = _typed(kind, value)
        if typed is None:
            errors.append(FieldError("body", name, f"{_TYPE_RULES[kind]}, got {_shown(value)}"))
        else:
            options[name] = typed
    return options


def _typed(kind: str, value: Any) -> Any:
    """`value` if it is of type `kind` (an integral number as an int, a time in UTC), else
    None."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        # 3.0 is the integer 3, as JSON Schema has it; 1e400 (inf) and 2.5 are not integers.
        return int(value) if number and float(value).is_integer() else None
    if kind == "number":
        return value if number else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "string":
        return value if isinstance(value, str) and value else None
    # parse_time also refuses a time that leaves the years a datetime holds once in UTC
    # ("0001-01-01T00:00:00+01:00"), which the store could not write.
    when = parse_time(value) if isinstance(value, str) else None
    return iso(when) if when is not None else None


def _shown(value: Any) -> str:
    """A JSON value as the client wrote it, shortened: for messages."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_payload(body: dict[str, Any], errors: list[FieldError]) -> tuple[Payload | None, str]:
    """The job's request payload from `payload`/`payload_base64`/`encoding`, and the field a
    payload error points at; None if invalid."""
    raw_encoding = body.get("encoding")
    encoding: Encoding | None = None
    if raw_encoding is not None:
        try:
            encoding = Encoding(raw_encoding) if isinstance(raw_encoding, str) else None
        except ValueError:
            encoding = None
        if encoding is None:
            errors.append(FieldError("body", "encoding", "must be json, binary or snappy"))
            return None, "encoding"

    if "payload_base64" in body:
        if "payload" in body:
            errors.append(
                FieldError("body", "payload_base64", "give payload or payload_base64, not both")
            )
            return None, "payload_base64"
        if encoding is Encoding.JSON:
            errors.append(
                FieldError("body", "encoding", "json takes a payload, not payload_base64")
            )
            return None, "encoding"
        text = body["payload_base64"]
        try:
            if not isinstance(text, str):
                raise ValueError("not a string")
            # Line breaks are allowed: the base64 tool wraps its output at 76 characters.
            data = base64.b64decode("".join(text.split()), validate=True)
        except (ValueError, binascii.Error):
            errors.append(FieldError("body", "payload_base64", "must be a base64 string"))
            return None, "payload_base64"
        return Payload(encoding or Encoding.BINARY, data=data), "payload_base64"

    if encoding is not None and encoding is not Encoding.JSON:
        errors.append(
            FieldError("body", "encoding", f"{encoding.value} takes payload_base64, not payload")
        )
        return None, "encoding"
    value = body.get("payload", {})  # no payload at all is the empty object
    try:
        payload_text = jsontext.dumps(value)
        jsontext.check_text(payload_text, what="payload")
    except DecodeError as exc:
        errors.append(FieldError("body", "payload", str(exc)))
        return None, "payload"
    return Payload(Encoding.JSON, text=payload_text), "payload"


def parse_list(params: Sequence[tuple[str, str]], *, created_by: str | None) -> ListRequest:
    """The filters of GET /api/v1/jobs; unknown parameters are ignored."""
    errors: list[FieldError] = []
    parts: list[str] = []
    values: dict[str, str] = {}
    for name, value in params:
        if name == "status":
            parts += (p for p in value.split(",") if p.strip())
        else:
            values[name] = value  # the last one wins
    states = _states("query", parts, tuple(JobState), errors)
    endpoint = _text("query", "endpoint", values.get("endpoint") or None, errors)
    tag = _text("query", "tag", values.get("tag") or None, errors)
    after = _time("query", "created_after", values.get("created_after") or None, errors)
    before_time = _time("query", "created_before", values.get("created_before") or None, errors)
    before_id = _integer(values, "before", 1, MAX_JOB_ID, None, errors)
    limit = _integer(values, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT, errors)
    if errors:
        raise invalid(errors)
    query = JobQuery(
        states=states or None,
        endpoint=endpoint,
        tag=tag,
        created_after=after,
        created_before=before_time,
        created_by=created_by,
        before_id=before_id,
    )
    assert limit is not None
    return ListRequest(query, limit)


def parse_bulk(action: str, body: Any, *, created_by: str | None) -> JobQuery:
    """The filters of POST /api/v1/jobs/retry or /cancel (`action`). At least one is required,
    so that an empty body cannot touch every job, and null is refused rather than read as "any"
    (a filter a client meant to set must not widen the action)."""
    if not isinstance(body, dict):
        what = "required" if body is None else "must be"
        raise invalid(
            [FieldError("body", "body", f"{what} a JSON object with {_one_of_bulk_fields()}")]
        )
    errors = [
        FieldError("body", name, f"unknown field; known fields are {', '.join(BULK_FIELDS)}")
        for name in body
        if name not in BULK_FIELDS
    ]
    errors += [
        FieldError("body", name, "must not be null (leave the field out not to filter on it)")
        for name in BULK_FIELDS
        if name in body and body[name] is None
    ]
    if not any(name in body for name in BULK_FIELDS):
        errors.append(FieldError("body", "body", f"give {_one_of_bulk_fields()}"))
    states = None
    if (given := body.get("status")) is not None:
        parts = [given] if isinstance(given, str) else given
        allowed = BULK_STATES[action]
        if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
            states = _states("body", parts, allowed, errors)
        else:
            names = ", ".join(s.value for s in allowed)
            errors.append(
                FieldError("body", "status", f"must be one of {names}, or a list of them")
            )
    endpoint = body.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint):
        errors.append(FieldError("body", "endpoint", "must be a non-empty string"))
    endpoint = _text("body", "endpoint", endpoint, errors)
    after = _time("body", "created_after", body.get("created_after"), errors)
    before = _time("body", "created_before", body.get("created_before"), errors)
    if errors:
        raise invalid(errors)
    return JobQuery(
        states=states,
        endpoint=endpoint,
        created_after=after,
        created_before=before,
        created_by=created_by,
    )


def _one_of_bulk_fields() -> str:
    return f"at least one of {', '.join(BULK_FIELDS)} (an empty filter would match every job)"


def _states(
    location: str, parts: Iterable[str], allowed: Sequence[JobState], errors: list[FieldError]
) -> tuple[JobState, ...]:
    """Job states by name (case and spaces aside), each once; names outside `allowed` are
    errors."""
    states: list[JobState] = []
    for part in parts:
        name = part.strip().lower()
        if name not in {s.value for s in allowed}:
            names = ", ".join(s.value for s in allowed)
            errors.append(FieldError(location, "status", f"{part!r} is not one of {names}"))
        else:
            states.append(JobState(name))
    return tuple(dict.fromkeys(states))


def _text(location: str, name: str, value: Any, errors: list[FieldError]) -> str | None:
    """A text filter; None when absent or already refused (not a string)."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        errors.append(FieldError(location, name, "must not contain NUL characters"))
        return None
    return value


def _integer(
    values: dict[str, str],
    name: str,
    low: int,
    high: int,
    default: int | None,
    errors: list[FieldError],
) -> int | None:
    text = values.get(name)
    if text is None or text == "":
        return default
    stripped = text.strip()
    digits = stripped.isascii() and stripped.isdigit() and len(stripped) <= len(str(high))
    if not digits or not low <= int(stripped) <= high:
        errors.append(FieldError("query", name, f"must be a whole number from {low} to {high}"))
        return default
    return int(stripped)


def _time(location: str, name: str, value: Any, errors: list[FieldError]) -> datetime | None:
    """A time filter, None when not given; anything but an RFC 3339 string is an error."""
    if value is None:
        return None
    when = parse_time(value) if isinstance(value, str) else None
    if when is None:
        errors.append(
            FieldError(location, name, "must be an RFC 3339 time like 2025-01-31T12:00:00Z")
        )
    return when


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 date-time (with offset) as aware UTC, or None when it is not one."""
    value = text.strip().upper()
    # In a query string an unencoded "+01:00" arrives as " 01:00": take it as meant.
    value = re.sub(r" (\d{2}:\d{2})$", r"+\1", value)
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    leap = match["second"] == "60"  # RFC 3339 allows a leap second; Python does not
    if leap:
        value = value[: match.start("second")] + "59" + value[match.end("second") :]
    try:
        when = datetime.fromisoformat(value).astimezone(UTC)
        return when + timedelta(seconds=1) if leap else when
    except (ValueError, OverflowError):
        return None


def parse_wait(text: str | None, maximum: float) -> float:
    """The `wait` query parameter: seconds to long-poll, 0 (the default) to `maximum`."""
    if text is None or text == "":
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= maximum):
        raise invalid(
            [FieldError("query", "wait", f"must be a number of seconds from 0 to {maximum:g}")]
        )
    return seconds


def parse_prune(body: Any) -> dict[JobState, timedelta] | None:
    """The retention a prune request asks for; None means the node's configured retention."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "body", "must be a JSON object")])
    errors = [
        FieldError("body", name, "unknown field; the only field is retention")
        for name in body
        if name != "retention"
    ]
    given = body.get("retention")
    retention: dict[JobState, timedelta] = {}
    if given is not None and not isinstance(given, dict):
        errors.append(FieldError("body", "retention", "must be an object"))
    elif isinstance(given, dict):
        finals = sorted(s.value for s in FINAL_STATES)
        for key, text in given.items():
            name = f"retention.{key}"
            if key not in finals:
                errors.append(FieldError("body", name, f"not one of {', '.join(finals)}"))
            elif not isinstance(text, str) or not text.strip():
                errors.append(FieldError("body", name, "must be a duration like 7d or 12h"))
            else:
                try:
                    keep = parse_duration(text)
                except ConfigError as exc:
                    errors.append(FieldError("body", name, str(exc)))
                    continue
                if keep is not None:  # "forever": that state is not pruned
                    retention[JobState(key)] = keep
    if errors:
        raise invalid(errors)
    return None if given is None else retention
