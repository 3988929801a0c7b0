"""Named job definitions and their submissions: the core under the CDM facade.

A definition is stored once and started many times; each start is a submission, one ordinary
job created in the same transaction as its submission row. A definition may also have a
schedule (core/schedules.py), written and removed in the same transaction as the definition;
its fires start the definition through `start_in`. The CDM facade owns the dialect (codes,
variables, validation, what a schedule looks like); this service owns storage, locking and
the job it creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobstore.core.jobs import JobService
from jobstore.core.schedules import NewSchedule, ScheduleService
from jobstore.domain.definitions import Definition, SubmissionRow
from jobstore.domain.errors import DefinitionBusy, DefinitionExists, DefinitionNotFound
from jobstore.domain.models import Inserted, NewJob

__all__ = ["Definition", "DefinitionService", "SubmissionRow"]


class DefinitionService:
    def __init__(self, jobs: JobService, schedules: ScheduleService | None = None) -> None:
        self.jobs = jobs
        self.schedules = schedules
        self.db = jobs.db
        self.store = jobs.db.cdm
        self.clock = jobs.clock

    async def create(
        self,
        project: str,
        cluster_id: str,
        definitions: list[tuple[str, str, dict[str, Any]]],
        user: str | None,
        schedules: Mapping[str, NewSchedule] | None = None,
    ) -> None:
        """Store (name, job type, definition) triples and the schedules of some of them (by
        name), all or none; DefinitionExists."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            for name, job_type, definition in definitions:
                if not await self.store.definition_insert(
                    conn,
                    project=project,
                    cluster_id=cluster_id,
                    name=name,
                    job_type=job_type,
                    definition=definition,
                    user=user,
                    now=now,
                ):
                    raise DefinitionExists(name)
                if schedules and name in schedules:
                    await self._schedules().put_in(conn, schedules[name])

    async def get(self, project: str, cluster_id: str, name: str) -> Definition:
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            found = await self.store.definition_get(conn, project, cluster_id, name)
        if found is None:
            raise DefinitionNotFound(name)
        return found

    async def list_definitions(
        self,
        project: str,
        cluster_id: str,
        *,
        name_filter: str | None,
        job_type: str,
        offset: int,
        limit: int,
    ) -> tuple[int, list[Definition]]:
        """(total, one page) of the definitions matching the filters."""
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            return await self.store.definition_list(
                conn,
                project,
                cluster_id,
                name_filter=name_filter,
                job_type=job_type,
                offset=offset,
                limit=limit,
            )

    async def update(
        self,
        project: str,
        cluster_id: str,
        name: str,
        job_type: str,
        definition: dict[str, Any],
        user: str | None,
        *,
        schedule_name: str | None = None,
        schedule: NewSchedule | None = None,
    ) -> None:
        """Replace a definition, and create or replace its schedule (`schedule`), or remove it
        (`schedule_name` without `schedule`)."""
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            if not await self.store.definition_update(
                conn,
                project=project,
                cluster_id=cluster_id,
                name=name,
                job_type=job_type,
                definition=definition,
                user=user,
                now=self.clock.now(),
            ):
                raise DefinitionNotFound(name)
            if schedule is not None:
                await self._schedules().put_in(conn, schedule)
            elif schedule_name is not None and self.schedules is not None:
                await self.schedules.delete_in(conn, schedule_name)

    async def delete(
        self, project: str, cluster_id: str, name: str, *, schedule_name: str | None = None
    ) -> None:
        """Delete a definition and its schedule (`schedule_name`); its submissions stay."""
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            if not await self.store.definition_delete(conn, project, cluster_id, name):
                raise DefinitionNotFound(name)
            if schedule_name is not None and self.schedules is not None:
                await self.schedules.delete_in(conn, schedule_name)

    def _schedules(self) -> ScheduleService:
        if self.schedules is None:
            raise RuntimeError("this DefinitionService was built without schedules")
        return self.schedules

    async def start(
        self,
        definition: Definition,
        new: NewJob,
        *,
        is_delete_job: bool,
        user: str | None,
        now: datetime,
    ) -> int:
        """Create the submission's job and its row in one transaction; the job's id.

        DefinitionNotFound when it was deleted meanwhile, DefinitionBusy while an earlier
        submission is not finished (scheduled, queued or running).
        """
        async with self.db.transaction() as conn:
            inserted = await self.start_in(
                conn, definition, new, is_delete_job=is_delete_job, user=user, now=now
            )
        self.jobs.announce_created(new)
        return inserted.job_id

    async def start_in(
        self,
        conn: Any,
        definition: Definition,
        new: NewJob,
        *,
        is_delete_job: bool,
        user: str | None,
        now: datetime,
    ) -> Inserted:
        """`start` in the caller's transaction (a schedule's fire), without the announce.

        When the job's tag finds an earlier job (the same fire time fired twice), nothing is
        written: that job's submission is the one."""
        project, cluster_id, name = definition.project, definition.cluster_id, definition.name
        # Locked (PostgreSQL) or under the write lock (SQLite): starts of one definition take
        # turns, so two cannot both find it idle.
        locked = await self.store.definition_get(conn, project, cluster_id, name, lock=True)
        if locked is None:
            raise DefinitionNotFound(name)
        if await self.store.submission_active(conn, project, cluster_id, name) is not None:
            raise DefinitionBusy(name)
        inserted = await self.jobs.create_in(conn, new)
        if inserted.created:
            await self.store.submission_insert(
                conn,
                job_id=inserted.job_id,
                definition=locked,
                is_delete_job=is_delete_job,
                user=user,
                now=now,
            )
        return inserted

    async def get_in(
        self, conn: Any, project: str, cluster_id: str, name: str
    ) -> Definition | None:
        """A definition, read in the caller's transaction (None: there is none, or it was
        deleted after its run)."""
        await self.store.definition_reap(conn)
        return await self.store.definition_get(conn, project, cluster_id, name)

    async def active_submission(self, project: str, cluster_id: str, name: str) -> int | None:
        """The job id of the definition's unfinished submission, if any."""
        async with self.db.reading() as conn:
            return await self.store.submission_active(conn, project, cluster_id, name)

    async def submissions(
        self, project: str, cluster_id: str, name: str, *, offset: int, limit: int
    ) -> tuple[int, list[SubmissionRow], Definition | None]:
        """(total, one page newest first, the definition if it still exists)."""
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            found = await self.store.definition_get(conn, project, cluster_id, name)
            total, rows = await self.store.submission_list(
                conn, project, cluster_id, name, offset=offset, limit=limit
            )
        return total, rows, found
