"""The `schedules` table: recurring schedules, and the due ones a node fires.

Firing is made safe across nodes twice over: a node locks the due rows it fires (FOR UPDATE
SKIP LOCKED on PostgreSQL; SQLite's single writer anyway), and every fire's job carries a tag
derived from the schedule and the fire time, so a second create of the same fire finds the
first (see core/schedules.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.schedules import Schedule
from jobstore.store.driver import Driver
from jobstore.store.tables import schedules

# The most schedules one firing transaction takes.
DUE_BATCH = 100


class ScheduleStore:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    async def schedule_create(self, conn: AsyncConnection, values: Mapping[str, Any]) -> int | None:
        """Insert a schedule; its id, or None when the name is taken."""
        insert = self.driver.insert_skip_conflict(schedules, [schedules.c.name])
        result = await conn.execute(insert.values(**values).returning(schedules.c.schedule_id))
        schedule_id: int | None = result.scalar()
        return schedule_id

    async def schedule_get(self, conn: AsyncConnection, name: str) -> Schedule | None:
        row = (await conn.execute(sa.select(schedules).where(schedules.c.name == name))).first()
        return Schedule.from_row(row._mapping) if row else None

    async def schedule_list(self, conn: AsyncConnection) -> list[Schedule]:
        rows = await conn.execute(sa.select(schedules).order_by(schedules.c.name))
        return [Schedule.from_row(r._mapping) for r in rows]

    async def schedule_update(
        self, conn: AsyncConnection, name: str, values: Mapping[str, Any]
    ) -> bool:
        done = await conn.execute(
            sa.update(schedules).where(schedules.c.name == name).values(**values)
        )
        return bool(done.rowcount)

    async def schedule_delete(self, conn: AsyncConnection, name: str) -> bool:
        done = await conn.execute(sa.delete(schedules).where(schedules.c.name == name))
        return bool(done.rowcount)

    async def schedule_due(
        self, conn: AsyncConnection, *, endpoints: Sequence[str], now: datetime
    ) -> list[Schedule]:
        """Enabled schedules of `endpoints` whose next fire time has come, locked for this
        transaction (rows another node is firing are skipped)."""
        due = self.driver.select_for_update(
            sa.select(schedules)
            .where(
                schedules.c.enabled,
                schedules.c.next_fire_at <= now,
                schedules.c.endpoint.in_(list(endpoints)),
            )
            .order_by(schedules.c.next_fire_at)
            .limit(DUE_BATCH),
            skip_locked=True,
        )
        return [Schedule.from_row(r._mapping) for r in await conn.execute(due)]

    async def schedule_next_fire(
        self, conn: AsyncConnection, *, endpoints: Sequence[str]
    ) -> datetime | None:
        """The earliest next fire time of the enabled schedules of `endpoints`."""
        first = sa.select(sa.func.min(schedules.c.next_fire_at)).where(
            schedules.c.enabled, schedules.c.endpoint.in_(list(endpoints))
        )
        value: datetime | None = (await conn.execute(first)).scalar()
        return value
