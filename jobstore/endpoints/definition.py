"""What an endpoint is: a named handler with optional Avro schemas, and the decorator that
declares one. Users mark plain functions with `@jobstore.endpoint(...)` in a module of their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobstore.codecs import Schema
from jobstore.domain.errors import BadOption, ConfigError
from jobstore.domain.limits import EndpointLimits
from jobstore.domain.options import RunOptions, parse_run_options
from jobstore.domain.schedules import Misfire, ScheduleSpec
from jobstore.endpoints.context import JobContext

__all__ = ["MARK", "SCHEDULE_FIELDS", "Endpoint", "Handler", "endpoint"]

Handler = Callable[[Any, JobContext], Any]
MARK = "__jobstore_endpoint__"
# What `@endpoint(schedule={...})` may give: when it fires, and the job each fire creates.
SCHEDULE_FIELDS = (
    "name",
    "cron",
    "every_seconds",
    "timezone",
    "misfire",
    "start_at",
    "end_at",
    "payload",
    "options",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A named handler.

    `raw` handlers get the payload as sent (text for JSON, bytes otherwise) and return the
    same kind. `retryable=False` means the handler is never run twice: if its node dies mid-run,
    the job ends `error`, and its jobs cannot ask for `retry_errors`. `defaults` are the engine
    options (priority, retries, timeout) of jobs that do not give their own. `limits` cap how
    many of its jobs run at once, per concurrency key and in all (see domain/limits.py).

    `takes_payload` handlers get the stored `Payload` itself (encoding and bytes or text, as
    the client sent it); any handler may return a `Payload`, which is stored as it is. `kind`
    says what runs the job (`python`, `http`, `kinetica-upstream`) and `upstream` the host an
    upstream endpoint calls, for listings (never a URL's path, query or credentials).
    """

    name: str
    handler: Handler
    request_schema: Schema | None = None
    response_schema: Schema | None = None
    retryable: bool = True
    raw: bool = False
    max_attempts: int | None = None
    description: str = ""
    defaults: RunOptions = field(default_factory=RunOptions)
    limits: EndpointLimits = field(default_factory=EndpointLimits)
    # A recurring schedule declared in code: the fields of a schedule create (core/schedules.py).
    schedule: Mapping[str, Any] | None = None
    takes_payload: bool = False
    kind: str = "python"
    upstream: str | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def _schema(value: Schema | dict[str, Any] | str | None) -> Schema | None:
    if value is None or isinstance(value, Schema):
        return value
    return Schema(value)


def endpoint(
    name: str,
    *,
    request_schema: Schema | dict[str, Any] | str | None = None,
    response_schema: Schema | dict[str, Any] | str | None = None,
    retryable: bool = True,
    raw: bool = False,
    max_attempts: int | None = None,
    priority: int | None = None,
    retry_errors: bool | None = None,
    backoff_seconds: float | None = None,
    timeout_seconds: float | None = None,
    concurrency_limit: int | None = None,
    global_limit: int | None = None,
    schedule: str | Mapping[str, Any] | None = None,
) -> Callable[[Handler], Handler]:
    """Mark a function `handler(request, ctx)` as the endpoint `name` (e.g. "/resize/image").

    `max_attempts`, `priority`, `retry_errors`, `backoff_seconds` and `timeout_seconds` are
    defaults for its jobs; a job's own options win. `concurrency_limit` is how many of its jobs
    with one `concurrency_key` run at once (unless the key has a named limit);
    `global_limit` how many of its jobs run at once in all; both across every node.
    `schedule` is a cron expression, or a dict of schedule fields (`cron` or `every_seconds`,
    `timezone`, `misfire`, `payload`, `name`, ...): every node stores it at start.
    """
    given = {
        "max_attempts": max_attempts,
        "priority": priority,
        "retry_errors": retry_errors,
        "backoff_seconds": backoff_seconds,
        "timeout_seconds": timeout_seconds,
    }
    try:
        defaults = parse_run_options({k: v for k, v in given.items() if v is not None})
    except BadOption as exc:
        raise ConfigError(f"endpoint {name}: {exc}") from None
    if defaults.retry_errors and not retryable:
        raise ConfigError(f"endpoint {name}: retry_errors needs a retryable endpoint")
    for what, value in (("concurrency_limit", concurrency_limit), ("global_limit", global_limit)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(
                f"endpoint {name}: {what} must be a whole number from 1, got {value!r}"
            )
    limits = EndpointLimits(concurrency_limit, global_limit)
    declared = _schedule(name, schedule)

    def mark(fn: Handler) -> Handler:
        ep = Endpoint(
            name=name,
            handler=fn,
            request_schema=_schema(request_schema),
            response_schema=_schema(response_schema),
            retryable=retryable,
            raw=raw,
            max_attempts=max_attempts,
            description=(inspect.getdoc(fn) or "").split("\n", 1)[0],
            defaults=defaults,
            limits=limits,
            schedule=declared,
        )
        setattr(fn, MARK, ep)
        return fn

    return mark


def _schedule(name: str, schedule: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A declared schedule as a dict of schedule fields; when it fires is checked now."""
    if schedule is None:
        return None
    fields: dict[str, Any] = {"cron": schedule} if isinstance(schedule, str) else dict(schedule)
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ConfigError(
            f"endpoint {name}: schedule has unknown fields {sorted(unknown)}; "
            f"known are {', '.join(SCHEDULE_FIELDS)}"
        )
    try:
        ScheduleSpec(
            cron=fields.get("cron"),
            every_seconds=fields.get("every_seconds"),
            timezone=fields.get("timezone", "UTC"),
            misfire=Misfire(fields.get("misfire", "skip")),
        )
    except (BadOption, ValueError) as exc:
        raise ConfigError(f"endpoint {name}: schedule: {exc}") from None
    return fields
