"""When a recurring schedule fires, and what it does about fire times nobody was up for.

A schedule fires on a cron expression (5 fields, or 6 with seconds first) read in an IANA time
zone, daylight saving time included, or every N seconds from its start. Fire times are instants
(aware datetimes); the store keeps the next one (`next_fire_at`) in UTC.

A fire time is *on time* while it is at most MISFIRE_GRACE old: any node that is up fires it.
Older fire times were *missed* (no node was up, or all were stuck) and the schedule's misfire
policy decides: `skip` fires none of them (the schedule goes on with its next fire time), `once`
fires the latest of them, `all` fires each, at most MISFIRE_ALL_CAP (the latest ones).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from jobstore.domain.errors import BadOption

MISFIRE_GRACE = timedelta(seconds=60)  # as Quartz's default misfire threshold
MISFIRE_ALL_CAP = 100
MIN_EVERY_SECONDS = 1.0
_COUNT_LIMIT = 100_000  # missed fire times are counted up to this many
_TICK = timedelta(microseconds=1)  # the finest step of a datetime
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Misfire(enum.StrEnum):
    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


@dataclass(frozen=True)
class Fires:
    """What is due at one moment: the fire times to run now, oldest first; how many missed
    ones the policy dropped (counted up to 100,000); and the next fire time after them."""

    times: list[datetime]
    dropped: int
    next_fire_at: datetime | None


@dataclass(frozen=True)
class ScheduleSpec:
    """When a schedule fires. Raises BadOption (naming the field) when it cannot work."""

    cron: str | None = None
    every_seconds: float | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    misfire: Misfire = Misfire.SKIP
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_seconds is None):
            raise BadOption("cron", "give either cron or every_seconds, not both nor neither")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadOption("timezone", f"unknown time zone {self.timezone!r}") from None
        object.__setattr__(self, "_zone", zone)
        if self.cron is not None:
            fields = self.cron.split()
            six = len(fields) == 6
            if len(fields) not in (5, 6) or not croniter.is_valid(
                self.cron, second_at_beginning=six
            ):
                raise BadOption(
                    "cron",
                    f"{self.cron!r} is not a cron expression of 5 fields (or 6, seconds first)",
                )
        if self.every_seconds is not None and not (
            math.isfinite(self.every_seconds) and self.every_seconds >= MIN_EVERY_SECONDS
        ):
            raise BadOption(
                "every_seconds", f"must be a number of seconds, {MIN_EVERY_SECONDS:g} or more"
            )
        for name in ("start_at", "end_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise BadOption(name, "must carry a time zone")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise BadOption("end_at", "must be after start_at")

    # -- fire times -------------------------------------------------------------------------

    def first_fire(self, now: datetime) -> datetime | None:
        """The first fire time of a new (or re-enabled) schedule: the first at or after `now`
        and `start_at`; None when there is none before `end_at`."""
        start = max(now, self.start_at) if self.start_at else now
        return self._within_end(self._at_or_after(start))

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (None: past `end_at`)."""
        return self._within_end(self._at_or_after(after + _TICK))

    def due(self, next_fire_at: datetime, now: datetime) -> Fires:
        """The fire times from `next_fire_at` up to `now` that run now, by the policy."""
        if next_fire_at > now:
            return Fires([], 0, next_fire_at)
        cutoff = now - MISFIRE_GRACE  # fire times at or before it were missed
        on_time = list(self._forward(max(next_fire_at, cutoff + _TICK), now))
        latest_missed = self._at_or_before(cutoff) if next_fire_at <= cutoff else None
        if latest_missed is not None and latest_missed < next_fire_at:
            latest_missed = None
        caught_up: list[datetime] = []
        dropped = 0
        if latest_missed is not None:
            if self.misfire is Misfire.ONCE:
                caught_up = [latest_missed]
            elif self.misfire is Misfire.ALL:
                caught_up = self._backward(latest_missed, next_fire_at, MISFIRE_ALL_CAP)
            dropped = self._count(next_fire_at, latest_missed) - len(caught_up)
        times = [t for t in caught_up + on_time if self.end_at is None or t <= self.end_at]
        return Fires(times, dropped, self.next_fire(now))

    # -- helpers ----------------------------------------------------------------------------

    def _within_end(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self.end_at is not None and moment > self.end_at):
            return None
        return moment

    def _at_or_after(self, moment: datetime) -> datetime | None:
        if self.every_seconds is not None:
            steps = math.ceil((moment - self._anchor).total_seconds() / self.every_seconds)
            return self._anchor + timedelta(seconds=max(steps, 0) * self.every_seconds)
        walls = self._walls(moment - _TICK, forward=True)
        return next((t for t in walls if t >= moment), None)

    def _at_or_before(self, moment: datetime) -> datetime | None:
        if self.every_seconds is not None:
            steps = math.floor((moment - self._anchor).total_seconds() / self.every_seconds)
            if steps < 0:
                return None
            return self._anchor + timedelta(seconds=steps * self.every_seconds)
        walls = self._walls(moment + _TICK, forward=False)
        return next((t for t in walls if t <= moment), None)

    @property
    def _anchor(self) -> datetime:
        """Where an every_seconds grid starts: start_at, or a fixed instant all nodes share."""
        return self.start_at or _EPOCH

    def _walls(self, start: datetime, *, forward: bool) -> Iterator[datetime]:
        """The cron's fire times from `start` on (or back), as instants.

        The cron matches local wall times, iterated without a zone (croniter's own zone
        handling is unreliable across DST), then placed in the zone as Python does: a wall
        time an autumn change repeats fires once, at its first occurrence; one a spring change
        skips fires an hour later in real time. Bounded: 100,000 wall times at most.
        """
        assert self.cron is not None
        six = len(self.cron.split()) == 6  # seconds first, as in Quartz, Spring and node-cron
        local = start.astimezone(self._zone).replace(tzinfo=None)
        times = croniter(self.cron, local, second_at_beginning=six)
        step = times.get_next if forward else times.get_prev
        for _ in range(_COUNT_LIMIT):
            wall: datetime = step(datetime)
            yield wall.replace(tzinfo=self._zone).astimezone(UTC)

    def _forward(self, start: datetime, until: datetime) -> Iterator[datetime]:
        moment = self._at_or_after(start)
        while moment is not None and moment <= until:
            yield moment
            moment = self._at_or_after(moment + _TICK)

    def _backward(self, latest: datetime, earliest: datetime, cap: int) -> list[datetime]:
        found: list[datetime] = []
        moment: datetime | None = latest
        while moment is not None and moment >= earliest and len(found) < cap:
            found.append(moment)
            moment = self._at_or_before(moment - _TICK)
        return sorted(found)

    def _count(self, earliest: datetime, latest: datetime) -> int:
        if self.every_seconds is not None:
            return int((latest - earliest).total_seconds() // self.every_seconds) + 1
        return len(self._backward(latest, earliest, _COUNT_LIMIT))


@dataclass(frozen=True)
class Schedule:
    """A row of `schedules`: what each fire creates, when it fires, where it stands."""

    schedule_id: int
    name: str
    endpoint: str
    request_encoding: str
    request_data: bytes | None
    request_text: str | None
    options: dict[str, str]
    cron: str | None
    timezone: str
    every_seconds: float | None
    misfire: Misfire
    start_at: datetime | None
    end_at: datetime | None
    enabled: bool
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_job_id: int | None
    source: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Schedule:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["misfire"] = Misfire(values["misfire"])
        values["options"] = dict(values["options"] or {})
        return cls(**values)

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec(
            cron=self.cron,
            every_seconds=self.every_seconds,
            timezone=self.timezone,
            start_at=self.start_at,
            end_at=self.end_at,
            misfire=self.misfire,
        )

    def tag_for(self, fire_time: datetime) -> str:
        """The tag of the job this schedule's fire at `fire_time` creates: the same on every
        node, so the second create of one fire finds the first."""
        return f"schedule-{self.schedule_id}-{round(fire_time.timestamp() * 1000)}"
