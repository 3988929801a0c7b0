"""Recurring schedules: create, read, pause, resume, delete and fire them; and the loop every
node runs that fires the due ones.

A fire creates an ordinary job, inside the transaction that moves the schedule on to its next
fire time. The job's tag comes from the schedule and the fire time (`Schedule.tag_for`), so
when two nodes fire the same time the second create finds the first job: exactly one job per
fire time, without a leader. The job's options name its schedule (`schedule`) and fire time
(`fire_time`), so it links back in every facade and in SQL.

Fire times are judged on the node's clock, which is the database's (store/clock.py). A node
that finds fire times older than the grace period applies the schedule's misfire policy
(domain/schedules.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobstore.core.jobs import JobService
from jobstore.domain.clock import Clock
from jobstore.domain.errors import BadOption, ClientError, ScheduleExists, ScheduleNotFound
from jobstore.domain.loops import Loop
from jobstore.domain.models import Encoding, NewJob, Payload
from jobstore.domain.schedules import Misfire, Schedule, ScheduleSpec

log = logging.getLogger(__name__)

# Schedule names: what a tag may hold, short enough for the tags derived from them.
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# The longest an idle node waits before it looks for due schedules again (a schedule created
# on another node is seen within this long); it wakes at the earliest fire time it knows.
FIRE_WAIT_SECONDS = 1.0
BUSY_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class NewSchedule:
    """What a create gives: the job each fire creates, and when it fires."""

    name: str
    endpoint: str
    payload: Payload
    options: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every_seconds: float | None = None
    timezone: str = "UTC"
    misfire: str = "skip"
    start_at: datetime | None = None
    end_at: datetime | None = None
    enabled: bool = True
    source: str = "api"
    created_by: str | None = None


@dataclass
class Fired:
    """What one round of firing did: per schedule, the jobs its fires created or found."""

    jobs: dict[str, list[int]] = field(default_factory=dict)
    dropped: int = 0  # missed fire times the misfire policies let go


class ScheduleService:
    def __init__(self, jobs: JobService, clock: Clock) -> None:
        self.jobs = jobs
        self.db = jobs.db
        self.store = jobs.db.schedules
        self.clock = clock
        self._wake = asyncio.Event()
        self._loop = Loop("jobstore-schedules", self._run)

    # -- the API ------------------------------------------------------------------------------

    async def create(self, new: NewSchedule) -> Schedule:
        """Store a schedule; raises the client's mistakes (naming the field) and
        ScheduleExists."""
        if not NAME.fullmatch(new.name):
            raise BadOption("name", "use 1 to 100 letters, digits, '_', '-' or '.'")
        try:
            misfire = Misfire(new.misfire)
        except ValueError:
            raise BadOption("misfire", "must be skip, once or all") from None
        spec = ScheduleSpec(
            cron=new.cron,
            every_seconds=new.every_seconds,
            timezone=new.timezone,
            start_at=new.start_at,
            end_at=new.end_at,
            misfire=misfire,
        )
        if "job_tag" in new.options:
            raise BadOption("job_tag", "a schedule's jobs are tagged by the schedule")
        # The job each fire will create, checked now: endpoint, payload and options.
        job = self.jobs.prepare_job(
            new.endpoint, new.payload, new.options, created_by=new.created_by
        )
        now = self.clock.now()
        values = {
            "name": new.name,
            "endpoint": new.endpoint,
            "request_encoding": new.payload.encoding.value,
            "request_data": new.payload.data,
            "request_text": new.payload.text,
            "options": {k: v for k, v in job.options.items() if k != "job_tag"},
            "cron": new.cron,
            "timezone": new.timezone,
            "every_seconds": new.every_seconds,
            "misfire": misfire.value,
            "start_at": new.start_at,
            "end_at": new.end_at,
            "enabled": new.enabled,
            "next_fire_at": spec.first_fire(now),
            "source": new.source,
            "created_by": new.created_by,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.transaction() as conn:
            if await self.store.schedule_create(conn, values) is None:
                raise ScheduleExists(new.name)
            created = await self.store.schedule_get(conn, new.name)
        assert created is not None
        self._wake.set()
        return created

    async def get(self, name: str) -> Schedule:
        async with self.db.reading() as conn:
            found = await self.store.schedule_get(conn, name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def list(self) -> list[Schedule]:
        async with self.db.reading() as conn:
            return await self.store.schedule_list(conn)

    async def set_enabled(self, name: str, enabled: bool) -> Schedule:
        """Pause, or resume: a resumed schedule fires next at its first fire time from now
        (what it missed while paused is not made up)."""
        async with self.db.transaction() as conn:
            found = await self.store.schedule_get(conn, name)
            if found is None:
                raise ScheduleNotFound(name)
            now = self.clock.now()
            values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
            if enabled and not found.enabled:
                values["next_fire_at"] = found.spec().first_fire(now)
            await self.store.schedule_update(conn, name, values)
            changed = await self.store.schedule_get(conn, name)
        assert changed is not None
        self._wake.set()
        return changed

    async def delete(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay."""
        async with self.db.transaction() as conn:
            if not await self.store.schedule_delete(conn, name):
                raise ScheduleNotFound(name)

    async def fire_now(self, name: str) -> int:
        """Create the schedule's job now, outside its fire times; its id."""
        schedule = await self.get(name)
        new = self._job(schedule, None)
        async with self.db.transaction() as conn:
            inserted = await self.jobs.create_in(conn, new)
            await self.store.schedule_update(
                conn, name, {"last_job_id": inserted.job_id, "updated_at": self.clock.now()}
            )
        self.jobs.announce_created(new)
        return inserted.job_id

    # -- firing -------------------------------------------------------------------------------

    async def fire_due(self) -> Fired:
        """Fire every due schedule of this node's endpoints, in one transaction. A schedule
        that cannot fire (its job no longer validates) is logged and moved on to its next
        fire time, and the others fire."""
        fired = Fired()
        created: list[NewJob] = []
        now = self.clock.now()
        async with self.db.transaction() as conn:
            due = await self.store.schedule_due(conn, endpoints=self.jobs.registry.names(), now=now)
            for schedule in due:
                assert schedule.next_fire_at is not None
                try:
                    async with conn.begin_nested():  # a savepoint: its failure is its own
                        fires = schedule.spec().due(schedule.next_fire_at, now)
                        news = [self._job(schedule, t) for t in fires.times]
                        inserted = [await self.jobs.create_in(conn, new) for new in news]
                except (ClientError, ValueError) as exc:
                    log.error(
                        "schedule %s cannot fire (%s); skipping to its next time",
                        schedule.name,
                        exc,
                    )
                    next_at = _next_after(schedule, now)
                    await self.store.schedule_update(
                        conn, schedule.name, {"next_fire_at": next_at, "updated_at": now}
                    )
                    continue
                created += [new for new, ins in zip(news, inserted, strict=True) if ins.created]
                values: dict[str, Any] = {"next_fire_at": fires.next_fire_at, "updated_at": now}
                if inserted:
                    values.update(last_fire_at=fires.times[-1], last_job_id=inserted[-1].job_id)
                await self.store.schedule_update(conn, schedule.name, values)
                fired.jobs[schedule.name] = [i.job_id for i in inserted]
                fired.dropped += fires.dropped
                if fires.dropped:
                    log.warning(
                        "schedule %s: %d missed fire times let go (misfire %s)",
                        schedule.name,
                        fires.dropped,
                        schedule.misfire.value,
                    )
        for new in created:
            self.jobs.announce_created(new)
        return fired

    def _job(self, schedule: Schedule, fire_time: datetime | None) -> NewJob:
        options: dict[str, Any] = {**schedule.options, "schedule": schedule.name}
        if fire_time is not None:
            options.update(job_tag=schedule.tag_for(fire_time), fire_time=fire_time.isoformat())
        payload = Payload(
            Encoding(schedule.request_encoding), schedule.request_data, schedule.request_text
        )
        return self.jobs.prepare_job(
            schedule.endpoint, payload, options, created_by=schedule.created_by
        )

    # -- the loop -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait = FIRE_WAIT_SECONDS
            try:
                async with self.db.reading() as conn:  # a read each round; a write when due
                    first = await self.store.schedule_next_fire(
                        conn, endpoints=self.jobs.registry.names()
                    )
                if first is not None and first <= self.clock.now():
                    await self.fire_due()
                    async with self.db.reading() as conn:
                        first = await self.store.schedule_next_fire(
                            conn, endpoints=self.jobs.registry.names()
                        )
                if first is not None:
                    until = (first - self.clock.now()).total_seconds()
                    # Still due: another node holds it (it is firing it): look again shortly.
                    wait = min(wait, max(until, BUSY_WAIT_SECONDS))
            except Exception as exc:  # the database is away: try again next round
                log.warning("firing schedules failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)


def _next_after(schedule: Schedule, now: datetime) -> datetime | None:
    """The next fire time of a schedule that could not fire now (None: none, or unreadable)."""
    try:
        return schedule.spec().next_fire(now)
    except (ClientError, ValueError):
        return None
