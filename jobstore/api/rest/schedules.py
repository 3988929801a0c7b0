"""Recurring schedules in the REST API, under /api/v1/schedules: create, list, read, change,
pause, resume, delete, and fire one now.

A schedule's body is a job create's (endpoint, payload, remove_on_complete and the engine's
options, read by inputs.py) without what each fire decides itself (tag, run_at,
delay_seconds), plus when it fires. The core checks what a schedule may be
(core/schedules.py); this module reads the JSON, and every mistake names its field.

With authentication on, a user who is not an admin sees and manages only the schedules they
created, as with jobs (another's is not found); admins, every one. A schedule's jobs are its
creator's (`created_by`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobstore.api.credentials import owner_filter
from jobstore.api.documents import (
    SCHEDULES_PATH,
    job_location,
    schedule_document,
    schedule_location,
)
from jobstore.api.rest.inputs import OPTION_TYPES, parse_options, parse_payload, parse_time
from jobstore.api.rest.problems import FieldError, JsonResponse, invalid
from jobstore.core.accounts import Principal
from jobstore.core.schedules import NAME, NewSchedule, ScheduleService
from jobstore.domain.errors import BadOption, DecodeError, ScheduleNotFound
from jobstore.domain.models import Payload
from jobstore.domain.options import MAX_SECONDS
from jobstore.domain.schedules import MIN_EVERY_SECONDS

Handler = Callable[[Request, Principal | None], Awaitable[Response]]
Guard = Callable[[Handler], Callable[[Request], Awaitable[Response]]]

# The engine's options of each fire's job: a job create's, but when it starts (its fire time).
JOB_OPTIONS = {k: v for k, v in OPTION_TYPES.items() if k not in ("run_at", "delay_seconds")}
# When it fires, with the JSON type of each (inputs.py's kinds).
TIMING_TYPES = {
    "cron": "string",
    "every_seconds": "number",
    "timezone": "string",
    "misfire": "string",
    "start_at": "time",
    "end_at": "time",
    "enabled": "boolean",
}
# What null means for each timing field: its default (enabled has none: true or false).
TIMING_DEFAULTS: dict[str, Any] = {
    "cron": None,
    "every_seconds": None,
    "timezone": "UTC",
    "misfire": "skip",
    "start_at": None,
    "end_at": None,
}
UPDATE_FIELDS = (
    "endpoint",
    "payload",
    "payload_base64",
    "encoding",
    "remove_on_complete",
    *JOB_OPTIONS,
    *TIMING_TYPES,
)
CREATE_FIELDS = ("name", *UPDATE_FIELDS)
NOT_SCHEDULE_FIELDS = {
    "tag": "not for a schedule: each fire's job is tagged by the schedule and its fire time",
    "run_at": "not for a schedule: each fire's job starts at its fire time (see start_at)",
    "delay_seconds": "not for a schedule: each fire's job starts at its fire time",
}
# A datetime ends with the year 9999; a schedule that starts later than this could step past
# it (every_seconds is at most ten years, a cron matches at least every few years).
LATEST_START = datetime(9000, 1, 1, tzinfo=UTC)
EVERY_RULE = f"must be a number of seconds from {MIN_EVERY_SECONDS:g} to {MAX_SECONDS:.0f}"
NAME_RULE = "must be 1 to 100 letters, digits, '_', '-' or '.' (not '.' or '..')"


@dataclass(frozen=True, slots=True)
class ScheduleBody:
    """A valid create or update body: the NewSchedule fields it gives, and how it changes the
    options of the job each fire creates."""

    fields: dict[str, Any]  # NewSchedule's names: name, endpoint, payload, cron, ...
    payload_field: str  # where a payload error points
    options: dict[str, Any]  # engine options given, by name; None: back to the default
    remove_on_complete: bool | None  # None: not given

    def job_options(self, current: dict[str, Any]) -> dict[str, Any]:
        """The job options of the schedule: `current` changed as this body says."""
        options = {**current, **self.options}
        if self.remove_on_complete is not None:
            options["remove_job_on_complete"] = "true" if self.remove_on_complete else None
        return {k: v for k, v in options.items() if v is not None}

    @property
    def changes_options(self) -> bool:
        return bool(self.options) or self.remove_on_complete is not None


def parse_schedule(body: Any, *, create: bool) -> ScheduleBody:
    """Check a create (`create`) or update body; raise one problem naming every bad field."""
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "body", "must be a JSON object")])
    known = CREATE_FIELDS if create else UPDATE_FIELDS
    errors = [
        FieldError("body", name, _unknown(name, known, create))
        for name in body
        if name not in known
    ]
    fields: dict[str, Any] = {}
    if create:
        name = body.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
            errors.append(FieldError("body", "name", "required" if name is None else NAME_RULE))
        fields["name"] = name
    if create or "endpoint" in body:
        endpoint = body.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            rule = "required" if endpoint is None and create else "must be a non-empty string"
            errors.append(FieldError("body", "endpoint", rule))
        fields["endpoint"] = endpoint

    payload_field = "payload"
    if create or "payload" in body or "payload_base64" in body:
        payload, payload_field = parse_payload(body, errors)
        fields["payload"] = payload
    elif "encoding" in body:
        errors.append(FieldError("body", "encoding", "give it with payload or payload_base64"))

    remove = body.get("remove_on_complete")
    if remove is not None and not isinstance(remove, bool):
        errors.append(FieldError("body", "remove_on_complete", "must be true or false"))
    options: dict[str, Any] = {name: None for name in JOB_OPTIONS if name in body}
    options.update(parse_options(body, JOB_OPTIONS, errors))
    fields.update(_timing(body, errors))
    if errors:
        raise invalid(errors)
    given_remove = bool(remove) if "remove_on_complete" in body else None  # null: false
    return ScheduleBody(fields, payload_field, options, given_remove)


def _unknown(name: str, known: tuple[str, ...], create: bool) -> str:
    if name in NOT_SCHEDULE_FIELDS:
        return NOT_SCHEDULE_FIELDS[name]
    if name == "name" and not create:
        return "a schedule's name cannot be changed (delete it and create another)"
    return f"unknown field; known fields are {', '.join(known)}"


def _timing(body: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """The timing fields given (null: the default), typed and in range."""
    typed = parse_options(body, TIMING_TYPES, errors)
    given = {name: typed.get(name, TIMING_DEFAULTS.get(name)) for name in TIMING_TYPES}
    given = {name: value for name, value in given.items() if name in body}
    if "enabled" in body and body["enabled"] is None:
        errors.append(FieldError("body", "enabled", "must be true or false, got null"))
    every = given.get("every_seconds")
    if every is not None and not MIN_EVERY_SECONDS <= every <= MAX_SECONDS:
        errors.append(FieldError("body", "every_seconds", EVERY_RULE))
    elif every is not None:
        given["every_seconds"] = float(every)  # compared first: a huge integer is no float
    for name in ("start_at", "end_at"):
        if given.get(name) is not None:
            given[name] = parse_time(str(given[name]))  # an RFC 3339 time: parse_options said
    zone = given.get("timezone")
    if isinstance(zone, str) and _unreadable_zone(zone):
        errors.append(FieldError("body", "timezone", f"unknown time zone {zone[:40]!r}"))
    start = given.get("start_at")
    if start is not None and start >= LATEST_START:
        errors.append(FieldError("body", "start_at", "must be before the year 9000"))
    # One of cron and every_seconds: giving one replaces the other.
    for one, other in (("cron", "every_seconds"), ("every_seconds", "cron")):
        if given.get(one) is not None and other not in body:
            given[other] = None
    return given


def _unreadable_zone(name: str) -> bool:
    """Whether zoneinfo fails on `name` with an OSError (a folder of the zone database, a name
    too long for a file), which the core's check does not expect. Its other refusals (no such
    zone, not a zone file) are the core's to report."""
    try:
        ZoneInfo(name)
    except OSError:
        return True
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return False


@contextlib.contextmanager
def _fields_named(payload_field: str) -> Iterator[None]:
    """The core's refusals as a 400 naming the field (the payload's, for a payload)."""
    try:
        yield
    except DecodeError as exc:  # the payload does not fit the endpoint's schema
        raise invalid([FieldError("body", payload_field, str(exc))]) from None
    except BadOption as exc:  # the core names the field, as the body has it
        raise invalid([FieldError("body", exc.option, exc.reason)]) from None


class ScheduleApi:
    """The routes of /api/v1/schedules over the core's ScheduleService."""

    def __init__(
        self, schedules: ScheduleService, read_json: Callable[[Request], Awaitable[Any]]
    ) -> None:
        self.schedules = schedules
        self.read_json = read_json

    def routes(self, guard: Guard) -> list[Route]:
        one = f"{SCHEDULES_PATH}/{{name}}"
        return [
            Route(SCHEDULES_PATH, guard(self.create_schedule), methods=["POST"]),
            Route(SCHEDULES_PATH, guard(self.list_schedules), methods=["GET"]),
            Route(one, guard(self.get_schedule), methods=["GET"]),
            Route(one, guard(self.update_schedule), methods=["PATCH"]),
            Route(one, guard(self.delete_schedule), methods=["DELETE"]),
            Route(f"{one}/pause", guard(self.pause_schedule), methods=["POST"]),
            Route(f"{one}/resume", guard(self.resume_schedule), methods=["POST"]),
            Route(f"{one}/fire", guard(self.fire_schedule), methods=["POST"]),
        ]

    async def _own(self, request: Request, principal: Principal | None) -> str:
        """The name of a schedule the caller may see and manage (else ScheduleNotFound)."""
        name = self._name(request)
        owner = owner_filter(principal)
        if owner is not None and (await self.schedules.get(name)).created_by != owner:
            raise ScheduleNotFound(name)
        return name

    @staticmethod
    def _name(request: Request) -> str:
        """The schedule's name from the path; one no schedule can have is not found (without
        asking the database, which may refuse what it holds, like a NUL)."""
        name: str = request.path_params["name"]
        if not NAME.fullmatch(name):
            raise ScheduleNotFound(name)
        return name

    async def _body(self, request: Request, *, create: bool) -> ScheduleBody:
        body = await self.read_json(request)
        if body is None:
            what = "with a name, an endpoint and cron or every_seconds" if create else ""
            raise invalid([FieldError("body", "body", f"required: a JSON object {what}".strip())])
        return parse_schedule(body, create=create)

    # -- routes -----------------------------------------------------------------------------

    async def create_schedule(self, request: Request, principal: Principal | None) -> Response:
        """POST /schedules: 201 with the schedule; 409 when the name is taken."""
        parsed = await self._body(request, create=True)
        fields = parsed.fields
        assert isinstance(fields["payload"], Payload)
        new = NewSchedule(
            **fields,
            options=parsed.job_options({}),
            created_by=principal.user if principal else None,
        )
        with _fields_named(parsed.payload_field):
            schedule = await self.schedules.create(new)
        return JsonResponse(
            schedule_document(schedule),
            201,
            headers={"Location": schedule_location(schedule.name)},
        )

    async def list_schedules(self, request: Request, principal: Principal | None) -> Response:
        """GET /schedules: every schedule, by name."""
        owner = owner_filter(principal)
        found = [s for s in await self.schedules.list() if owner in (None, s.created_by)]
        return JsonResponse({"schedules": [schedule_document(s) for s in found]})

    async def get_schedule(self, request: Request, principal: Principal | None) -> Response:
        """GET /schedules/{name}."""
        return JsonResponse(
            schedule_document(await self.schedules.get(await self._own(request, principal)))
        )

    async def update_schedule(self, request: Request, principal: Principal | None) -> Response:
        """PATCH /schedules/{name}: change the fields given; the rest stay."""
        name = await self._own(request, principal)
        parsed = await self._body(request, create=False)
        changes = dict(parsed.fields)
        if parsed.changes_options:
            # Read, then written in the update's own transaction: of two updates of one
            # schedule's options at the same moment, the last wins.
            current = await self.schedules.get(name)
            changes["options"] = parsed.job_options(current.options)
        with _fields_named(parsed.payload_field):
            schedule = await self.schedules.update(name, changes)
        return JsonResponse(schedule_document(schedule))

    async def delete_schedule(self, request: Request, principal: Principal | None) -> Response:
        """DELETE /schedules/{name}: 204; the jobs it created stay."""
        await self.schedules.delete(await self._own(request, principal))
        return Response(status_code=204)

    async def pause_schedule(self, request: Request, principal: Principal | None) -> Response:
        """POST /schedules/{name}/pause: it fires no more until resumed."""
        schedule = await self.schedules.set_enabled(await self._own(request, principal), False)
        return JsonResponse(schedule_document(schedule))

    async def resume_schedule(self, request: Request, principal: Principal | None) -> Response:
        """POST /schedules/{name}/resume: it fires next at its first fire time from now."""
        schedule = await self.schedules.set_enabled(await self._own(request, principal), True)
        return JsonResponse(schedule_document(schedule))

    async def fire_schedule(self, request: Request, principal: Principal | None) -> Response:
        """POST /schedules/{name}/fire: create its job now, outside its fire times."""
        job_id = await self.schedules.fire_now(await self._own(request, principal))
        location = job_location(job_id)
        return JsonResponse(
            {"job_id": job_id, "location": location}, 201, headers={"Location": location}
        )
