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
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from jobstore.domain.errors import BadOption

MISFIRE_GRACE = timedelta(seconds=60)  # as Quartz's default misfire threshold
MISFIRE_ALL_CAP = 100
MIN_EVERY_SECONDS = 1.0
MAX_EVERY_SECONDS = 10 * 365 * 24 * 3600.0  # ten years, as the engine's other durations
_COUNT_LIMIT = 10_000  # a cron's missed fire times are counted up to this many
_TICK = timedelta(microseconds=1)  # the finest step of a datetime
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# Fire times stay far from the end of what a datetime holds (year 9999).
_LAST = datetime(9000, 1, 1, tzinfo=UTC)


class Misfire(enum.StrEnum):
    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


@dataclass(frozen=True)
class Fires:
    """What is due at one moment: the fire times to run now, oldest first; how many missed
    ones the policy dropped (a cron's counted up to 10,000); and the next fire time after them."""

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
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America", too long
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
            if self._at_or_after(_EPOCH) is None:
                raise BadOption("cron", f"{self.cron!r} matches no date")
        if self.every_seconds is not None and not (
            math.isfinite(self.every_seconds)
            and MIN_EVERY_SECONDS <= self.every_seconds <= MAX_EVERY_SECONDS
        ):
            raise BadOption(
                "every_seconds",
                f"must be a number of seconds from {MIN_EVERY_SECONDS:g} to {MAX_EVERY_SECONDS:g}",
            )
        for name in ("start_at", "end_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise BadOption(name, "must carry a time zone")
            if value is not None and not _EPOCH <= value <= _LAST:
                raise BadOption(name, f"must be from {_EPOCH:%Y} to {_LAST:%Y}")
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
        last = min(now, self.end_at) if self.end_at else now  # no fire time after end_at
        cutoff = now - MISFIRE_GRACE  # fire times at or before it were missed
        on_time = list(self._between(max(next_fire_at, cutoff + _TICK), last))
        missed_until = min(cutoff, last)
        missed = [] if next_fire_at > missed_until else self._latest(next_fire_at, missed_until)
        caught_up = {Misfire.SKIP: [], Misfire.ONCE: missed[-1:], Misfire.ALL: missed}
        chosen = caught_up[self.misfire]
        dropped = 0
        if missed:
            dropped = self._count(next_fire_at, missed[-1]) - len(chosen)
        return Fires(chosen + on_time, dropped, self.next_fire(now))

    # -- helpers ----------------------------------------------------------------------------

    def _within_end(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self.end_at is not None and moment > self.end_at):
            return None
        return moment

    def _at_or_after(self, moment: datetime) -> datetime | None:
        return next(self._between(moment, None), None)

    def _between(self, earliest: datetime, latest: datetime | None) -> Iterator[datetime]:
        """Fire times from `earliest` to `latest` (None: no end), oldest first."""
        if self.every_seconds is not None:
            step = self._step_us
            first = max(-(-self._us(earliest) // step), 0)  # ceiling, in whole steps
            for k in itertools.count(first):
                moment = self._grid(k)
                if latest is not None and moment > latest:
                    return
                yield moment
        for moment in self._walls(earliest - _TICK, forward=True):
            if moment < earliest:
                continue  # the repeated hour of an autumn change, seen from its second pass
            if latest is not None and moment > latest:
                return
            yield moment

    def _latest(self, earliest: datetime, latest: datetime) -> list[datetime]:
        """The last MISFIRE_ALL_CAP fire times from `earliest` to `latest`, oldest first."""
        found: list[datetime] = []
        if self.every_seconds is not None:
            last = self._us(latest) // self._step_us
            for k in range(last, last - MISFIRE_ALL_CAP, -1):
                if k < 0 or self._grid(k) < earliest:
                    break
                found.append(self._grid(k))
            return found[::-1]
        for moment in self._walls(latest + _TICK, forward=False):
            if moment > latest:
                continue
            if moment < earliest or len(found) == MISFIRE_ALL_CAP:
                break
            found.append(moment)
        return found[::-1]

    def _count(self, earliest: datetime, latest: datetime) -> int:
        """How many fire times lie from `earliest` to `latest` (a cron's: up to 10,000)."""
        if self.every_seconds is not None:
            step = self._step_us
            return self._us(latest) // step - max(-(-self._us(earliest) // step), 0) + 1
        return sum(1 for _ in itertools.islice(self._between(earliest, latest), _COUNT_LIMIT))

    # The every_seconds grid, in whole microseconds from its anchor: no float rounding can
    # move a fire time off it or step over one.
    @property
    def _step_us(self) -> int:
        assert self.every_seconds is not None
        return round(self.every_seconds * 1_000_000)

    def _us(self, moment: datetime) -> int:
        return (moment - self._anchor) // _TICK

    def _grid(self, k: int) -> datetime:
        return self._anchor + k * self._step_us * _TICK

    @property
    def _anchor(self) -> datetime:
        """Where an every_seconds grid starts: start_at, or a fixed instant all nodes share."""
        return self.start_at or _EPOCH

    def _walls(self, start: datetime, *, forward: bool) -> Iterator[datetime]:
        """The cron's fire times from `start` on (or back), as instants, from one iterator.

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
        try:
            for _ in range(_COUNT_LIMIT * 10):
                wall: datetime = step(datetime)
                yield wall.replace(tzinfo=self._zone).astimezone(UTC)
        except CroniterBadDateError:
            return  # no such date within croniter's search (e.g. 30 February)


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
