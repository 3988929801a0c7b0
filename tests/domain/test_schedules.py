"""Fire times of recurring schedules: cron in a time zone (across DST changes), fixed intervals,
start and end, and the misfire policies after an outage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobstore.domain.errors import BadOption
from jobstore.domain.schedules import MISFIRE_ALL_CAP, MISFIRE_GRACE, Misfire, ScheduleSpec

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(spec: ScheduleSpec, start: datetime, count: int) -> list[datetime]:
    found = [spec.first_fire(start)]
    while len(found) < count:
        assert found[-1] is not None
        found.append(spec.next_fire(found[-1]))
    return [f for f in found if f is not None]


# -- what a schedule is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "cron"),
        ({"cron": "* * * * *", "every_seconds": 5}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "* * * * * * *"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"every_seconds": 0.5}, "every_seconds"),
        ({"every_seconds": float("nan")}, "every_seconds"),
        ({"every_seconds": 1e300}, "every_seconds"),  # would overflow a datetime
        ({"cron": "* * * * *", "timezone": "America"}, "timezone"),  # a folder of zones
        ({"cron": "* * * * *", "timezone": "x" * 300}, "timezone"),  # a name too long
        ({"every_seconds": 5, "start_at": utc(9500, 1, 1)}, "start_at"),
        ({"every_seconds": 5, "start_at": datetime(2026, 1, 1)}, "start_at"),
        ({"every_seconds": 5, "start_at": utc(2026, 1, 2), "end_at": utc(2026, 1, 1)}, "end_at"),
    ],
)
def test_a_schedule_that_cannot_work_names_its_field(kwargs: dict, field: str) -> None:
    with pytest.raises(BadOption) as raised:
        ScheduleSpec(**kwargs)
    assert raised.value.option == field


def test_cron_fires_in_its_time_zone() -> None:
    spec = ScheduleSpec(cron="0 9 * * 1-5", timezone="Europe/Berlin")  # 9:00 on weekdays
    got = fires(spec, utc(2026, 12, 4, 12), 3)  # a Friday, after 9:00
    assert [f.astimezone(BERLIN).strftime("%a %d %H:%M") for f in got] == [
        "Mon 07 09:00",
        "Tue 08 09:00",
        "Wed 09 09:00",
    ]
    assert got[0] == utc(2026, 12, 7, 8)  # 9:00 in Berlin in winter is 8:00 UTC


def test_six_fields_have_seconds_first() -> None:
    spec = ScheduleSpec(cron="*/15 * * * * *")
    assert fires(spec, utc(2026, 1, 1, 0, 0, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 15),
        utc(2026, 1, 1, 0, 0, 30),
        utc(2026, 1, 1, 0, 0, 45),
    ]


def test_a_daily_cron_fires_once_on_the_days_the_clocks_change() -> None:
    # Berlin: 2026-03-29 02:00 -> 03:00 (spring), 2026-10-25 03:00 -> 02:00 (autumn).
    daily = ScheduleSpec(cron="30 1 * * *", timezone="Europe/Berlin")
    spring = fires(daily, utc(2026, 3, 27, 12), 3)
    assert [f.astimezone(BERLIN).strftime("%d %H:%M") for f in spring] == [
        "28 01:30",
        "29 01:30",
        "30 01:30",
    ]
    assert spring[2] - spring[1] == timedelta(hours=23)  # the day was 23 hours long
    autumn = fires(daily, utc(2026, 10, 24, 12), 3)
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_an_hourly_cron_fires_every_real_hour_across_a_change() -> None:
    hourly = ScheduleSpec(cron="0 * * * *", timezone="Europe/Berlin")
    got = fires(hourly, utc(2026, 10, 24, 23, 30), 5)  # around 02:00-03:00 twice
    gaps = {b - a for a, b in itertools.pairwise(got)}
    assert len(got) == len(set(got)) == 5
    assert gaps <= {timedelta(hours=1), timedelta(hours=2)}
    assert got[0] == utc(2026, 10, 25, 0)


def test_every_seconds_is_a_fixed_grid_from_the_start() -> None:
    start = utc(2026, 1, 1, 0, 0, 0)
    spec = ScheduleSpec(every_seconds=30, start_at=start, end_at=start + timedelta(minutes=1))
    assert spec.first_fire(utc(2025, 12, 31)) == start  # not before start_at
    assert spec.first_fire(start + timedelta(seconds=1)) == start + timedelta(seconds=30)
    assert spec.next_fire(start + timedelta(seconds=30)) == start + timedelta(seconds=60)
    assert spec.next_fire(start + timedelta(seconds=60)) is None  # past end_at
    # Nodes agree on the grid without a start_at too: it is fixed, not "from now".
    a, b = ScheduleSpec(every_seconds=7), ScheduleSpec(every_seconds=7)
    moment = utc(2026, 5, 5, 5, 5, 5)
    assert a.first_fire(moment) == b.first_fire(moment + timedelta(seconds=1))


# -- due fire times and misfires ------------------------------------------------------------


def test_on_time_fires_run_whatever_the_policy() -> None:
    spec = ScheduleSpec(every_seconds=1, start_at=utc(2026, 1, 1))
    due = spec.due(utc(2026, 1, 1, 0, 0, 10), utc(2026, 1, 1, 0, 0, 12, 500_000))
    assert due.times == [utc(2026, 1, 1, 0, 0, s) for s in (10, 11, 12)]
    assert due.dropped == 0
    assert due.next_fire_at == utc(2026, 1, 1, 0, 0, 13)
    assert spec.due(utc(2026, 1, 1, 0, 0, 13), utc(2026, 1, 1, 0, 0, 12)).times == []


@pytest.mark.parametrize(
    ("misfire", "caught_up"),
    [(Misfire.SKIP, 0), (Misfire.ONCE, 1), (Misfire.ALL, MISFIRE_ALL_CAP)],
)
def test_an_hour_down_applies_the_misfire_policy(misfire: Misfire, caught_up: int) -> None:
    spec = ScheduleSpec(cron="* * * * *", misfire=misfire)  # every minute
    last_due = utc(2026, 1, 1, 10, 0)
    back = utc(2026, 1, 1, 11, 0, 30)  # down for an hour: 61 fire times went by
    due = spec.due(last_due, back)
    on_time = [utc(2026, 1, 1, 11, 0)]  # within MISFIRE_GRACE of coming back
    missed = [t for t in due.times if t < back - MISFIRE_GRACE]
    assert due.times[len(missed) :] == on_time
    assert len(missed) == min(caught_up, 60)
    if missed:
        assert missed[-1] == utc(2026, 1, 1, 10, 59)  # the latest missed one first of all
        assert missed == sorted(set(missed))
    assert due.dropped == 60 - len(missed)
    assert due.next_fire_at == utc(2026, 1, 1, 11, 1)


def test_all_is_capped_to_the_latest_missed_fires() -> None:
    spec = ScheduleSpec(every_seconds=1, start_at=utc(2026, 1, 1), misfire=Misfire.ALL)
    due = spec.due(utc(2026, 1, 1), utc(2026, 1, 1, 1))  # 3600 s down
    missed = [t for t in due.times if t <= utc(2026, 1, 1, 1) - MISFIRE_GRACE]
    assert len(missed) == MISFIRE_ALL_CAP
    assert missed[-1] == utc(2026, 1, 1, 0, 59, 0)
    assert due.dropped == 3541 - MISFIRE_ALL_CAP  # 00:00:00 .. 00:59:00 went by unfired


def test_a_wall_time_the_spring_change_skips_fires_once_an_hour_later() -> None:
    at_half_past_two = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    got = fires(at_half_past_two, utc(2026, 3, 28, 12), 2)
    # 02:30 does not exist on the 29th: it fires at 03:30 local (01:30 UTC), once.
    assert got == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]


@pytest.mark.parametrize("seconds", [1.1, 1.7, 2.3, 2.5])
def test_a_fractional_interval_fires_every_grid_time_once(seconds: float) -> None:
    """Round after round, as the firing loop does: no fire time is stepped over."""
    spec = ScheduleSpec(
        every_seconds=seconds,
        start_at=utc(
            2026,
            1,
            1,
            0,
            0,
            0,
        ),
    )
    next_at = spec.first_fire(utc(2026, 1, 1))
    fired: list[datetime] = []
    now = utc(2026, 1, 1)
    for _ in range(1500):
        now += timedelta(seconds=1)
        assert next_at is not None
        due = spec.due(next_at, now)
        fired += due.times
        next_at = due.next_fire_at
        assert due.dropped == 0
    expected = [
        utc(2026, 1, 1) + timedelta(microseconds=round(seconds * 1e6) * k)
        for k in range(len(fired))
    ]
    assert fired == expected and len(fired) == 1500_000_000 // round(seconds * 1e6) + 1


def test_once_catches_up_the_last_fire_before_end_at() -> None:
    spec = ScheduleSpec(cron="0 * * * *", end_at=utc(2026, 1, 1, 12), misfire=Misfire.ONCE)
    due = spec.due(utc(2026, 1, 1, 11), utc(2026, 1, 1, 13, 5))  # down from 11:00 to 13:05
    assert due.times == [utc(2026, 1, 1, 12)]
    assert due.dropped == 1  # 11:00
    assert due.next_fire_at is None  # past end_at


def test_a_cron_that_matches_no_date_is_refused() -> None:
    with pytest.raises(BadOption, match="matches no date"):
        ScheduleSpec(cron="0 0 30 2 *")


def test_counting_a_long_outage_is_bounded() -> None:
    every_second = ScheduleSpec(cron="* * * * * *")
    due = every_second.due(utc(2026, 1, 1), utc(2026, 1, 2))  # a day down: 86,341 missed
    assert len(due.times) == 60  # the last minute is on time
    assert due.dropped == 10_000  # counted up to 10,000
