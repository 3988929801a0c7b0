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
import builtins
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jobstore.codecs import jsontext
from jobstore.core.jobs import JobService
from jobstore.domain.clock import Clock
from jobstore.domain.errors import (
    BadOption,
    ClientError,
    ConfigError,
    ScheduleExists,
    ScheduleManaged,
    ScheduleNotFound,
)
from jobstore.domain.loops import Loop, wait_set
from jobstore.domain.models import Encoding, Inserted, NewJob, Payload
from jobstore.domain.schedules import Misfire, Schedule, ScheduleSpec

log = logging.getLogger(__name__)

# Schedule names: what a tag may hold, short enough for the tags derived from them.
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# The longest an idle node waits before it looks for due schedules again (a schedule created
# on another node is seen within this long); it wakes at the earliest fire time it knows.
FIRE_WAIT_SECONDS = 1.0
CODE = "code"  # the source of schedules declared next to their endpoint
BUSY_WAIT_SECONDS = 0.05
# What an update may change: a create's fields, but the name and who made it, and where.
CHANGEABLE = frozenset(
    {"endpoint", "payload", "options", "cron", "every_seconds", "timezone", "misfire"}
    | {"start_at", "end_at", "enabled"}
)
_TIMING = ("cron", "every_seconds", "timezone", "start_at", "end_at")


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
        self._sources: dict[str, SourceFire] = {}

    # -- the API ------------------------------------------------------------------------------

    async def create(self, new: NewSchedule) -> Schedule:
        """Store a schedule; raises the client's mistakes (naming the field) and
        ScheduleExists."""
        async with self.db.transaction() as conn:
            await self._create_in(conn, new)
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

    async def update(self, name: str, changes: Mapping[str, Any]) -> Schedule:
        """Change a schedule: `changes` maps fields of NewSchedule (CHANGEABLE) to their new
        values, checked as create checks them. When the timing changed, or the schedule is
        enabled again, it fires next at its first fire time from now."""
        if unknown := sorted(set(changes) - CHANGEABLE):
            raise BadOption(unknown[0], "cannot be changed")
        async with self.db.transaction() as conn:
            found = await self.store.schedule_get(conn, name)
            if found is None:
                raise ScheduleNotFound(name)
            if found.source in self._sources:
                raise ScheduleManaged(name, found.source)
            await self._replace(conn, found, replace(_as_new(found), **changes))
            changed = await self.store.schedule_get(conn, name)
        assert changed is not None
        self._wake.set()
        return changed

    async def delete(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay."""
        async with self.db.transaction() as conn:
            found = await self.store.schedule_get(conn, name)
            if found is not None and found.source in self._sources:
                raise ScheduleManaged(name, found.source)
            if not await self.store.schedule_delete(conn, name):
                raise ScheduleNotFound(name)

    async def fire_now(self, name: str) -> int:
        """Create the schedule's job now, outside its fire times; its id."""
        schedule = await self.get(name)
        async with self.db.transaction() as conn:
            made = await self._fire_one(conn, schedule, None)
            if made is None:
                raise ClientError(f"schedule {name} cannot fire now")
            new, inserted = made
            await self.store.schedule_update(
                conn, name, {"last_job_id": inserted.job_id, "updated_at": self.clock.now()}
            )
        self.jobs.announce_created(new)
        return inserted.job_id

    def _checked(self, new: NewSchedule) -> tuple[ScheduleSpec, dict[str, Any]]:
        """Check a schedule as every write does (each mistake names its field): when it
        fires, and the job each fire creates. Its spec, and the columns it writes."""
        if not NAME.fullmatch(new.name):
            raise BadOption("name", "use 1 to 100 letters, digits, '_', '-' or '.'")
        try:
            misfire = Misfire(new.misfire)
        except ValueError:
            raise BadOption("misfire", "must be skip, once or all") from None
        timing = {f: getattr(new, f) for f in _TIMING}
        spec = ScheduleSpec(**timing, misfire=misfire)
        if "job_tag" in new.options:
            raise BadOption("job_tag", "a schedule's jobs are tagged by the schedule")
        job = self.jobs.prepare_job(
            new.endpoint, new.payload, new.options, created_by=new.created_by
        )
        return spec, {
            **timing,
            "endpoint": new.endpoint,
            "request_encoding": new.payload.encoding.value,
            "request_data": new.payload.data,
            "request_text": new.payload.text,
            "options": {k: v for k, v in job.options.items() if k != "job_tag"},
            "misfire": misfire.value,
            "enabled": new.enabled,
            "created_by": new.created_by,
        }

    async def _create_in(self, conn: Any, new: NewSchedule) -> None:
        """Insert `new`, first firing at its first fire time from now; ScheduleExists when
        the name is taken."""
        spec, values = self._checked(new)
        now = self.clock.now()
        values.update(
            name=new.name,
            next_fire_at=spec.first_fire(now),
            source=new.source,
            created_at=now,
            updated_at=now,
        )
        if await self.store.schedule_create(conn, values) is None:
            raise ScheduleExists(new.name)

    async def _replace(self, conn: Any, found: Schedule, new: NewSchedule) -> None:
        """Write `new` over the stored `found`. A fire time still due stays due, unless the
        times changed or the schedule is enabled again: then the first from now."""
        spec, values = self._checked(new)
        now = self.clock.now()
        values["updated_at"] = now
        retimed = any(getattr(spec, f) != getattr(found, f) for f in _TIMING)
        if retimed or (new.enabled and not found.enabled):
            values["next_fire_at"] = spec.first_fire(now)
        await self.store.schedule_update(conn, found.name, values)

    # -- firing -------------------------------------------------------------------------------

    async def fire_due(self) -> Fired:
        """Fire every due schedule of this node's endpoints, in one transaction. A schedule
        that cannot fire (its job no longer validates) is logged and moved on to its next
        fire time, and the others fire."""
        fired = Fired()
        created: list[NewJob] = []
        counts: list[tuple[str, int, int]] = []  # per schedule: new jobs, missed times let go
        now = self.clock.now()
        async with self.db.transaction() as conn:
            due = await self.store.schedule_due(conn, endpoints=self.jobs.registry.names(), now=now)
            for schedule in due:
                assert schedule.next_fire_at is not None
                try:
                    async with conn.begin_nested():  # a savepoint: its failure is its own
                        fires = schedule.spec().due(schedule.next_fire_at, now)
                        made = [(t, await self._fire_one(conn, schedule, t)) for t in fires.times]
                        done = [(t, m) for t, m in made if m is not None]  # a source may skip
                except (ClientError, ValueError, OverflowError) as exc:
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
                made_new = [new for _, (new, ins) in done if ins.created]
                created += made_new
                counts.append((schedule.name, len(made_new), fires.dropped))
                values: dict[str, Any] = {"next_fire_at": fires.next_fire_at, "updated_at": now}
                if done:
                    last_time, (_, last) = done[-1]
                    values.update(last_fire_at=last_time, last_job_id=last.job_id)
                await self.store.schedule_update(conn, schedule.name, values)
                fired.jobs[schedule.name] = [ins.job_id for _, (_, ins) in done]
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
        if self.jobs.metrics is not None:
            for name, fires_made, missed in counts:
                self.jobs.metrics.schedule_fired(name, fires_made, missed)
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

    # -- schedules a facade keeps (CDM's scheduled definitions) -------------------------------

    def register_source(self, source: str, fire: SourceFire) -> None:
        """Let `fire` make the fires of the schedules of `source` instead of the stored job:
        for a facade whose fire is more than a job (a CDM submission: its variables resolved at
        the fire time, its own row beside the job)."""
        self._sources[source] = fire

    async def put_in(self, conn: Any, new: NewSchedule) -> None:
        """Create `new`, or replace the schedule of its name and source, in the caller's
        transaction (a facade writes it with its own record). A replaced schedule keeps its
        history; when its times changed, it fires next at its first time from now.
        ScheduleExists when the name is another source's."""
        found = await self.store.schedule_get(conn, new.name)
        if found is not None and found.source != new.source:
            raise ScheduleExists(new.name)
        if found is not None:
            await self._replace(conn, found, new)
        else:
            await self._create_in(conn, new)
        self._wake.set()

    async def delete_in(self, conn: Any, name: str) -> bool:
        """Delete a schedule in the caller's transaction; False when there was none."""
        return await self.store.schedule_delete(conn, name)

    async def _fire_one(
        self, conn: Any, schedule: Schedule, fire_time: datetime | None
    ) -> tuple[NewJob, Inserted] | None:
        """Create the job of one fire time (None: a fire now), by its source's `fire` when one
        is registered (which may skip the fire time: None)."""
        fire = self._sources.get(schedule.source)
        if fire is not None:
            return await fire(conn, schedule, fire_time)
        new = self._job(schedule, fire_time)
        return new, await self.jobs.create_in(conn, new)

    # -- the loop -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store_declared()
        self._loop.start()

    async def store_declared(self) -> builtins.list[str]:
        """Store the schedules declared next to this node's endpoints (`@endpoint(...,
        schedule=...)`, source `code`): create them, or update them where the code changed;
        a pause stays. A name another source holds is left alone (logged). Their names.
        ConfigError when one cannot fire (say, its payload does not fit its endpoint)."""
        stored = []
        for ep in self.jobs.registry:
            if ep.schedule is None:
                continue
            new = declared_schedule(ep.name, ep.schedule)
            for _ in range(2):  # a node starting beside us may create it between our steps
                try:
                    async with self.db.transaction() as conn:
                        found = await self.store.schedule_get(conn, new.name)
                        if found is not None and found.source == CODE:
                            new = replace(new, enabled=found.enabled)
                        await self.put_in(conn, new)
                    stored.append(new.name)
                    break
                except ScheduleExists:
                    continue
                except (ClientError, ValueError, TypeError) as exc:
                    raise ConfigError(f"endpoint {ep.name}: schedule {new.name}: {exc}") from None
            else:
                log.warning(
                    "the schedule of endpoint %s is not stored: the name %s is another's",
                    ep.name,
                    new.name,
                )
        return stored

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
            await wait_set(self._wake, wait)


# A source's fire (see register_source): inside the firing transaction, create what the
# schedule's fire at a time (None: now, on request) makes, and return its job; None skips it.
SourceFire = Callable[[Any, Schedule, datetime | None], Awaitable[tuple[NewJob, Inserted] | None]]


def _next_after(schedule: Schedule, now: datetime) -> datetime | None:
    """The next fire time of a schedule that could not fire now (None: none, or unreadable)."""
    try:
        return schedule.spec().next_fire(now)
    except (ClientError, ValueError, OverflowError):
        return None


def _as_new(schedule: Schedule) -> NewSchedule:
    """A stored schedule as the create that would make it (for an update to change)."""
    payload = Payload(
        Encoding(schedule.request_encoding), schedule.request_data, schedule.request_text
    )
    return NewSchedule(
        name=schedule.name,
        endpoint=schedule.endpoint,
        payload=payload,
        options=schedule.options,
        cron=schedule.cron,
        every_seconds=schedule.every_seconds,
        timezone=schedule.timezone,
        misfire=schedule.misfire.value,
        start_at=schedule.start_at,
        end_at=schedule.end_at,
        enabled=schedule.enabled,
        source=schedule.source,
        created_by=schedule.created_by,
    )


def declared_schedule(endpoint: str, fields: Mapping[str, Any]) -> NewSchedule:
    """The schedule an endpoint declares in code: named after the endpoint ("/reports/nightly"
    is "reports.nightly") unless it says otherwise; its payload is JSON."""
    given = dict(fields)
    default_name = re.sub(r"[^A-Za-z0-9_.-]", "-", endpoint.strip("/").replace("/", "."))
    name = given.pop("name", None) or default_name[:100] or "root"
    payload = Payload(Encoding.JSON, text=jsontext.dumps(given.pop("payload", {})))
    for when in ("start_at", "end_at"):
        if isinstance(given.get(when), str):
            given[when] = datetime.fromisoformat(given[when])
    return NewSchedule(name=name, endpoint=endpoint, payload=payload, source=CODE, **given)
