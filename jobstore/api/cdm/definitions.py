"""CDM named jobs over the job store: a definition is started with variables, and each start
is a submission: one ordinary jobstore job, the same row `/get/job` and SQL see.

What a definition runs comes from its driver config group `jobstoreConfig`: `endpoint`
(e.g. /sleep), `request` (a JSON text template) and `requestEncoding` (json). CDM's own fields
(links, connectors, from/to config values) are resolved too and handed to the endpoint's
request under their own names.

A definition whose `schedulerConfig` asks for it also has a schedule (api/cdm/scheduling.py),
kept with it in the same transaction; each fire starts it as a start without variables would,
at the planned fire time, and is skipped while the previous submission is not finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobstore.api.cdm.scheduling import (
    IDENTITY,
    MISFIRE,
    SOURCE,
    SchedulerConfigError,
    is_scheduled,
    read_timing,
    schedule_name,
)
from jobstore.api.cdm.variables import resolve
from jobstore.codecs import jsontext
from jobstore.codecs.jsontext import check_text
from jobstore.core.definitions import Definition, DefinitionService, SubmissionRow
from jobstore.core.jobs import JobService
from jobstore.core.schedules import NewSchedule, ScheduleService
from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.errors import (
    BadRequest,
    ClientError,
    DecodeError,
    DefinitionBusy,
    DefinitionExists,
    DefinitionNotFound,
    ScheduleExists,
    UnknownEndpoint,
)
from jobstore.domain.inputs import MAX_NESTING_CEILING, check_value
from jobstore.domain.models import Encoding, Inserted, NewJob, Payload
from jobstore.domain.schedules import Schedule

__all__ = ["CdmError", "CdmService", "Definition", "Started", "SubmissionRow", "scheduled"]

log = logging.getLogger(__name__)

JOB_TYPES = ("NORMAL_JOB", "BATCH_JOB", "SCENARIO_JOB")
CONFIG_SECTIONS = ("from-config-values", "to-config-values", "driver-config-values")
CDM_FIELDS = (
    "from-link-name",
    "from-connector-name",
    "to-link-name",
    "to-connector-name",
    *CONFIG_SECTIONS,
)
ENDPOINT_INPUT = "jobstoreConfig.endpoint"
REQUEST_INPUT = "jobstoreConfig.request"
ENCODING_INPUT = "jobstoreConfig.requestEncoding"
DELETE_INPUT = "schedulerConfig.disposableType"


class CdmError(ClientError):
    """An error in CDM's terms: a `Cdm.xxxx` code and an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def not_found(name: str) -> CdmError:
    return CdmError("Cdm.0100", f"Job[{name}] doesn't exist.")


@dataclass(frozen=True, slots=True)
class Started:
    job_id: int
    job_name: str
    user: str | None
    at: datetime
    is_delete_job: bool
    is_execute_auto: bool = False


def config_inputs(definition: Mapping[str, Any], section: str) -> dict[str, Any]:
    """`{input name: value}` of one ConfigValues section."""
    values = definition.get(section) or {}
    found: dict[str, Any] = {}
    for config in values.get("configs") or []:
        for item in config.get("inputs") or []:
            found[str(item.get("name"))] = item.get("value")
    return found


def scheduled(definition: Mapping[str, Any]) -> bool:
    """Whether a definition runs on a schedule (CDM's `is-execute-auto`)."""
    return is_scheduled(config_inputs(definition, "driver-config-values"))


def _check_texts(job: Any) -> None:
    """Every string (keys too) must be storable text: no NUL, no lone surrogates."""
    try:
        check_value(job, what="the job", max_nesting=MAX_NESTING_CEILING)
    except ClientError as exc:
        raise CdmError("Cdm.0104", f"Invalid job: {exc}") from None


def _validate(job: Any, registry_has: Any) -> tuple[str, str, dict[str, Any]]:
    """(name, job_type, definition) of a Job object; CdmError when it cannot run."""
    if not isinstance(job, dict):
        raise CdmError("Cdm.0104", "each job must be a JSON object")
    _check_texts(job)
    name = job.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 240 or name == "all":
        raise CdmError("Cdm.0104", "a job needs a 'name' of 1 to 240 characters (not 'all')")
    if "/" in name or name in (".", ".."):  # no URL could name it: /job/{name} is one segment
        raise CdmError("Cdm.0104", "a job's 'name' must not contain '/' or be '.' or '..'")
    job_type = job.get("job_type", "NORMAL_JOB")
    if job_type not in JOB_TYPES:
        raise CdmError("Cdm.0104", f"job_type must be one of {', '.join(JOB_TYPES)}")
    for section in CONFIG_SECTIONS:
        value = job.get(section)
        if value is None:
            continue
        configs = value.get("configs") if isinstance(value, dict) else None
        if not isinstance(configs, list) or not all(
            isinstance(c, dict)
            and isinstance(c.get("inputs", []), list)
            and all(
                isinstance(i, dict) and isinstance(i.get("name"), str) for i in c.get("inputs", [])
            )
            for c in configs
        ):
            raise CdmError(
                "Cdm.0104",
                f'\'{section}\' must be {{"configs": [{{"name": ..., "inputs": '
                '[{"name": ..., "value": ...}]}]}',
            )
    driver = config_inputs(job, "driver-config-values")
    endpoint = driver.get(ENDPOINT_INPUT)
    if not isinstance(endpoint, str) or not endpoint:
        raise CdmError(
            "Cdm.0104",
            f"Job[{name}] needs the driver input '{ENDPOINT_INPUT}' naming a jobstore endpoint",
        )
    if "${" not in endpoint and not registry_has(endpoint):
        raise CdmError("Cdm.0104", f"Job[{name}]: unknown endpoint '{endpoint}'")
    encoding = driver.get(ENCODING_INPUT, "json")
    if encoding != "json":
        raise CdmError("Cdm.0104", f"Job[{name}]: only requestEncoding 'json' is supported")
    definition = {k: v for k, v in job.items() if k in ("name", "job_type", *CDM_FIELDS)}
    definition["job_type"] = job_type
    return name, job_type, definition


class CdmService:
    """CDM's named jobs in CDM's terms, over the core's DefinitionService."""

    def __init__(
        self,
        jobs: JobService,
        *,
        cluster_id: str | None = None,
        clock: Clock | None = None,
        schedules: ScheduleService | None = None,
    ) -> None:
        """Without `schedules`, definitions that ask for a schedule are refused."""
        self.jobs = jobs
        self.schedules = schedules
        self.definitions = DefinitionService(jobs, schedules)
        self.cluster_id = cluster_id
        self.clock = clock or SystemClock()
        if schedules is not None:
            schedules.register_source(SOURCE, self._fire)

    def check_cluster(self, cluster_id: str) -> None:
        if self.cluster_id is not None and cluster_id != self.cluster_id:
            raise CdmError("Cdm.0001", f"The cluster {cluster_id} does not exist or is invalid.")

    async def create(
        self, project: str, cluster_id: str, jobs: list[Any], user: str | None
    ) -> list[str]:
        checked = [_validate(job, self.jobs.registry.__contains__) for job in jobs]
        names = [name for name, _, _ in checked]
        if len(set(names)) != len(names):
            raise CdmError("Cdm.0104", "the same job name appears twice in the request")
        planned = {}
        for name, _, definition in checked:
            if (
                schedule := self._schedule(project, cluster_id, name, definition, user)
            ) is not None:
                planned[name] = schedule
        try:
            await self.definitions.create(project, cluster_id, checked, user, planned)
        except DefinitionExists as exc:
            raise CdmError("Cdm.0104", f"Job[{exc.name}] already exists.") from None
        except ScheduleExists as exc:
            raise CdmError("Cdm.0104", f"the schedule name {exc} is taken") from None
        return names

    async def get(self, project: str, cluster_id: str, name: str) -> Definition:
        try:
            return await self.definitions.get(project, cluster_id, name)
        except DefinitionNotFound:
            raise not_found(name) from None

    async def list_definitions(
        self,
        project: str,
        cluster_id: str,
        *,
        name_filter: str | None,
        job_type: str,
        page_no: int,
        page_size: int,
    ) -> tuple[int, list[Definition]]:
        return await self.definitions.list_definitions(
            project,
            cluster_id,
            name_filter=name_filter,
            job_type=job_type,
            offset=(page_no - 1) * page_size,
            limit=page_size,
        )

    async def modify(
        self, project: str, cluster_id: str, name: str, job: Any, user: str | None
    ) -> None:
        if isinstance(job, dict) and "name" not in job:
            job = {**job, "name": name}
        new_name, job_type, definition = _validate(job, self.jobs.registry.__contains__)
        if new_name != name:
            raise CdmError("Cdm.0095", f"the job's name cannot change ({name} -> {new_name})")
        schedule = self._schedule(project, cluster_id, name, definition, user)
        try:
            await self.definitions.update(
                project,
                cluster_id,
                name,
                job_type,
                definition,
                user,
                schedule_name=schedule_name(project, cluster_id, name),
                schedule=schedule,
            )
        except DefinitionNotFound:
            raise not_found(name) from None
        except ScheduleExists as exc:
            raise CdmError("Cdm.0104", f"the schedule name {exc} is taken") from None

    async def delete(self, project: str, cluster_id: str, name: str) -> None:
        try:
            await self.definitions.delete(
                project, cluster_id, name, schedule_name=schedule_name(project, cluster_id, name)
            )
        except DefinitionNotFound:
            raise not_found(name) from None

    async def start(
        self,
        project: str,
        cluster_id: str,
        name: str,
        variables: Mapping[str, str],
        user: str | None,
    ) -> Started:
        """Resolve the definition's placeholders and create its submission (one job)."""
        now = self.clock.now()
        for key, value in variables.items():
            try:
                check_text(key, what="a variable name")
                check_text(value, what=f"variable {key!r}")
            except ClientError as exc:
                raise CdmError("Cdm.0014", f"Invalid parameter: {exc}") from None
        definition = await self.get(project, cluster_id, name)
        endpoint, request, is_delete = self._request(name, definition.definition, variables, now)
        try:
            new = self.jobs.prepare_job(
                endpoint,
                Payload(Encoding.JSON, text=json.dumps(request)),
                created_by=user,
                project=project,
            )
        except UnknownEndpoint as exc:
            raise CdmError("Cdm.0014", f"Invalid parameter: {exc}") from exc
        try:
            job_id = await self.definitions.start(
                definition, new, is_delete_job=is_delete, user=user, now=now
            )
        except DefinitionNotFound:
            raise not_found(name) from None
        except DefinitionBusy:
            raise CdmError("Cdm.0500", f"Job[{name}] is already running.") from None
        return Started(job_id, name, user, now, is_delete, scheduled(definition.definition))

    def _request(
        self,
        name: str,
        definition: Mapping[str, Any],
        variables: Mapping[str, str],
        now: datetime,
    ) -> tuple[str, Any, bool]:
        """(endpoint, request value, delete-after-run) with every placeholder resolved."""
        resolved: dict[str, Any] = {}
        for key, value in definition.items():
            resolved[key] = _resolve_all(value, variables, now)
        driver = config_inputs(resolved, "driver-config-values")
        endpoint = str(driver[ENDPOINT_INPUT])
        template = driver.get(REQUEST_INPUT)
        cdm_fields = {"job-name": name}
        cdm_fields.update({k: resolved[k] for k in CDM_FIELDS if k in resolved})
        request: Any = cdm_fields
        if template not in (None, ""):
            try:
                parsed = jsontext.loads(
                    str(template),
                    what=f"'{REQUEST_INPUT}' once resolved",
                    max_nesting=self.jobs.limits.max_nesting,
                )
            except DecodeError as exc:
                raise CdmError("Cdm.0014", f"Invalid parameter: {exc}") from exc
            request = {**cdm_fields, **parsed} if isinstance(parsed, dict) else parsed
        disposable = str(driver.get(DELETE_INPUT) or "NONE").upper()
        is_delete = disposable not in ("NONE", "FALSE", "")
        is_delete = is_delete or definition.get("isDeleteJob") is True
        return endpoint, request, is_delete

    # -- schedules ------------------------------------------------------------------------------

    def _schedule(
        self,
        project: str,
        cluster_id: str,
        name: str,
        definition: dict[str, Any],
        user: str | None,
    ) -> NewSchedule | None:
        """The schedule a definition asks for (None: none); CdmError when it cannot run."""
        try:
            timing = read_timing(config_inputs(definition, "driver-config-values"))
        except SchedulerConfigError as exc:
            raise CdmError("Cdm.0104", f"Job[{name}]: {exc}") from None
        if timing is None:
            return None
        if self.schedules is None:
            raise CdmError("Cdm.0104", f"Job[{name}]: this node runs no scheduled jobs")
        # A fire has no variables: what it creates must come from the built-ins alone. What it
        # would create now is checked, and stored as the schedule's job for people to read.
        try:
            endpoint, request, _ = self._request(name, definition, {}, self.clock.now())
            payload = Payload(Encoding.JSON, text=json.dumps(request))
            options = dict(zip(IDENTITY, (project, cluster_id, name), strict=True))
            self.jobs.prepare_job(endpoint, payload, options, created_by=user)
        except ClientError as exc:
            raise CdmError(
                "Cdm.0104", f"Job[{name}] runs on a schedule, whose runs have no variables: {exc}"
            ) from None
        return NewSchedule(
            name=schedule_name(project, cluster_id, name),
            endpoint=endpoint,
            payload=payload,
            options=options,
            cron=timing.cron,
            every_seconds=timing.every_seconds,
            misfire=MISFIRE,
            start_at=timing.start_at,
            end_at=timing.end_at,
            source=SOURCE,
            created_by=user,
        )

    async def _fire(
        self, conn: Any, schedule: Schedule, fire_time: datetime | None
    ) -> tuple[NewJob, Inserted] | None:
        """One fire of a definition's schedule (ScheduleService.register_source): a submission,
        its placeholders resolved at the planned fire time (None: fired on request, now).
        Skipped (None) while the previous submission is not finished, and when a later fire
        time is due too (after an outage: one run, of the latest)."""
        project, cluster_id, name = (str(schedule.options.get(key)) for key in IDENTITY)
        definition = await self.definitions.get_in(conn, project, cluster_id, name)
        if definition is None:  # deleted after its run (disposableType): its schedule goes too
            log.info("CDM job %s is gone: its schedule %s is deleted", name, schedule.name)
            assert self.schedules is not None
            await self.schedules.delete_in(conn, schedule.name)
            return None
        if fire_time is not None:
            later = schedule.spec().next_fire(fire_time)
            if later is not None and later <= self.clock.now():
                return None  # a missed fire time with a later one due: the later one runs
        at = fire_time or self.clock.now()
        endpoint, request, is_delete = self._request(name, definition.definition, {}, at)
        options = {"schedule": schedule.name}
        if fire_time is not None:
            options.update(job_tag=schedule.tag_for(fire_time), fire_time=fire_time.isoformat())
        new = self.jobs.prepare_job(
            endpoint,
            Payload(Encoding.JSON, text=json.dumps(request)),
            options,
            created_by=schedule.created_by,
            project=project,
        )
        try:
            inserted = await self.definitions.start_in(
                conn,
                definition,
                new,
                is_delete_job=is_delete,
                user=schedule.created_by,
                now=self.clock.now(),
            )
        except DefinitionBusy:
            if fire_time is None:
                raise CdmError("Cdm.0500", f"Job[{name}] is already running.") from None
            log.info("CDM job %s is still running: its run of %s is skipped", name, at.isoformat())
            return None
        return new, inserted

    async def stop(self, project: str, cluster_id: str, name: str) -> bool:
        """Cancel the running submission; False when nothing was running."""
        await self.get(project, cluster_id, name)
        active = await self.definitions.active_submission(project, cluster_id, name)
        if active is None:
            return False
        await self.jobs.cancel_jobs([active])
        return True

    async def submissions(
        self, project: str, cluster_id: str, name: str, *, page_no: int = 1, page_size: int = 1
    ) -> tuple[int, list[SubmissionRow], Definition | None]:
        """Newest first. Unknown only when neither the definition nor any run exists."""
        total, rows, found = await self.definitions.submissions(
            project, cluster_id, name, offset=(page_no - 1) * page_size, limit=page_size
        )
        if found is None and total == 0:
            raise not_found(name)
        return total, rows, found


def _resolve_all(value: Any, variables: Mapping[str, str], now: datetime) -> Any:
    """Resolve placeholders in every string inside a JSON value."""
    if isinstance(value, str):
        try:
            return resolve(value, variables, now)
        except BadRequest as exc:
            raise CdmError("Cdm.0014", str(exc)) from exc
    if isinstance(value, list):
        return [_resolve_all(v, variables, now) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_all(v, variables, now) for k, v in value.items()}
    return value
