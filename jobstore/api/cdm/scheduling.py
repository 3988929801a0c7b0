"""CDM's scheduled definitions: the driver group `schedulerConfig`, read as a jobstore schedule.

    schedulerConfig.isSchedulerJob   "true": the definition runs on a schedule
    schedulerConfig.cycleType        minute, hour, day, week or month
    schedulerConfig.cycle            every how many of them (a whole number; default 1)
    schedulerConfig.startDate        the first fire time, "yyyy-MM-dd HH:mm:ss", in UTC
    schedulerConfig.stopDate         no fire after it (optional; `endDate` is read too)

minute, hour, day and week fire every `cycle` x 60 s, 3,600 s, 86,400 s or 604,800 s on a grid
anchored at startDate: exact, as UTC has no daylight saving time. A month is no fixed number of
seconds, so month is a cron on startDate's second, minute, hour and day of the month, in
startDate's month and every `cycle`-th month from it; that is a grid only when `cycle` divides
12, so the others are refused. A day of the month that a month lacks (29 to 31) skips that
month, as any cron does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobstore.domain.errors import BadOption, ClientError
from jobstore.domain.schedules import ScheduleSpec

SOURCE = "cdm"  # the `source` of the schedules this facade keeps
SCHEDULER_JOB = "schedulerConfig.isSchedulerJob"
CYCLE_TYPE = "schedulerConfig.cycleType"
CYCLE = "schedulerConfig.cycle"
RUN_AT = "schedulerConfig.runAt"
START_DATE = "schedulerConfig.startDate"
STOP_DATES = ("schedulerConfig.stopDate", "schedulerConfig.endDate")
UNIT_SECONDS = {"minute": 60, "hour": 3_600, "day": 86_400, "week": 604_800}
MONTH_CYCLES = (1, 2, 3, 4, 6, 12)
MAX_CYCLE = 10_000
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
# After an outage, the latest missed fire time runs once (at its planned time), as Quartz's
# default for cron triggers does; the others are let go.
MISFIRE = "once"
# The schedule's options that name its definition (the schedule name is a digest of them).
IDENTITY = ("cdm_project", "cdm_cluster", "cdm_job")


class SchedulerConfigError(ClientError):
    """A `schedulerConfig` that cannot be run; the facade answers it as CDM does."""


@dataclass(frozen=True, slots=True)
class Timing:
    """When a scheduled definition fires: as the fields of a jobstore schedule."""

    cron: str | None
    every_seconds: float | None
    start_at: datetime
    end_at: datetime | None


def is_scheduled(driver: Mapping[str, Any]) -> bool:
    """Whether driver inputs ask for a schedule; a value other than true or false reads false
    (refused at create, so only for definitions stored before they were read)."""
    return str(driver.get(SCHEDULER_JOB, "")).strip().lower() == "true"


def read_timing(driver: Mapping[str, Any]) -> Timing | None:
    """The timing that driver inputs ask for, None when they ask for no schedule;
    SchedulerConfigError (naming the input) when it cannot be run."""
    flag = str(driver.get(SCHEDULER_JOB, "")).strip().lower()
    if flag not in ("true", "false", "", "none"):
        raise SchedulerConfigError(f"'{SCHEDULER_JOB}' must be true or false, not {flag!r}")
    if flag != "true":
        return None
    cycle_type = str(driver.get(CYCLE_TYPE, "")).strip().lower()
    if cycle_type not in (*UNIT_SECONDS, "month"):
        raise SchedulerConfigError(
            f"'{CYCLE_TYPE}' must be minute, hour, day, week or month, not {cycle_type!r}"
        )
    cycle = _cycle(driver.get(CYCLE))
    if str(driver.get(RUN_AT) or "").strip():
        raise SchedulerConfigError(
            f"'{RUN_AT}' is not supported: a schedule fires at the times of '{START_DATE}'"
        )
    start = _date(driver, START_DATE, required=True)
    assert start is not None
    stops = [_date(driver, key, required=False) for key in STOP_DATES]
    end = next((stop for stop in stops if stop is not None), None)
    if cycle_type == "month":
        if cycle not in MONTH_CYCLES:
            raise SchedulerConfigError(
                f"'{CYCLE}' of a month schedule must be 1, 2, 3, 4, 6 or 12, not {cycle}"
            )
        months = sorted((start.month - 1 + k * cycle) % 12 + 1 for k in range(12 // cycle))
        cron = f"{start.second} {start.minute} {start.hour} {start.day} "
        timing = Timing(cron + ",".join(map(str, months)) + " *", None, start, end)
    else:
        timing = Timing(None, float(UNIT_SECONDS[cycle_type] * cycle), start, end)
    try:
        ScheduleSpec(
            cron=timing.cron,
            every_seconds=timing.every_seconds,
            start_at=timing.start_at,
            end_at=timing.end_at,
        )
    except BadOption as exc:
        if exc.option == "end_at":
            raise SchedulerConfigError(f"'{STOP_DATES[0]}' must be after '{START_DATE}'") from None
        raise SchedulerConfigError(f"'{START_DATE}' gives no fire time: {exc.reason}") from None
    return timing


def schedule_name(project: str, cluster_id: str, name: str) -> str:
    """The schedule of a definition: readable, unique by a digest of project, cluster and
    name (they may hold any character, and any of them '-'), within the 100 characters a
    schedule name has."""
    digest = hashlib.sha256("\0".join((project, cluster_id, name)).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{project}.{cluster_id}.{name}")[:79]
    return f"cdm-{readable}-{digest}"


def _cycle(value: Any) -> int:
    text = "1" if value is None or str(value).strip() == "" else str(value).strip()
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_CYCLE:
        raise SchedulerConfigError(f"'{CYCLE}' must be a whole number from 1 to {MAX_CYCLE}")
    return int(text)


def _date(driver: Mapping[str, Any], key: str, *, required: bool) -> datetime | None:
    text = str(driver.get(key) or "").strip()
    if not text:
        if required:
            raise SchedulerConfigError(f"a scheduled job needs '{key}', e.g. 2026-01-01 00:00:00")
        return None
    for form in DATE_FORMATS:
        try:
            return datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise SchedulerConfigError(f"'{key}' must read yyyy-MM-dd HH:mm:ss (UTC), not {text!r}")
