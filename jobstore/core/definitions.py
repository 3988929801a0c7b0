"""Named job definitions and their submissions: the core under the CDM facade.

A definition is stored once and started many times; each start is a submission, one ordinary
job created in the same transaction as its submission row. The CDM facade owns the dialect
(codes, variables, validation); this service owns storage, locking and the job it creates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobstore.core.jobs import JobService
from jobstore.domain.definitions import Definition, SubmissionRow
from jobstore.domain.errors import DefinitionBusy, DefinitionExists, DefinitionNotFound
from jobstore.domain.models import NewJob

__all__ = ["Definition", "DefinitionService", "SubmissionRow"]


class DefinitionService:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.db = jobs.db
        self.store = jobs.db.cdm
        self.clock = jobs.clock

    async def create(
        self,
        project: str,
        cluster_id: str,
        definitions: list[tuple[str, str, dict[str, Any]]],
        user: str | None,
    ) -> None:
        """Store (name, job type, definition) triples, all or none; DefinitionExists."""
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
    ) -> None:
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

    async def delete(self, project: str, cluster_id: str, name: str) -> None:
        async with self.db.transaction() as conn:
            await self.store.definition_reap(conn)
            if not await self.store.definition_delete(conn, project, cluster_id, name):
                raise DefinitionNotFound(name)

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
        project, cluster_id, name = definition.project, definition.cluster_id, definition.name
        async with self.db.transaction() as conn:
            # Locked (PostgreSQL) or under the write lock (SQLite): starts of one definition
            # take turns, so two cannot both find it idle.
            locked = await self.store.definition_get(conn, project, cluster_id, name, lock=True)
            if locked is None:
                raise DefinitionNotFound(name)
            if await self.store.submission_active(conn, project, cluster_id, name) is not None:
                raise DefinitionBusy(name)
            inserted = await self.jobs.create_in(conn, new)
            await self.store.submission_insert(
                conn,
                job_id=inserted.job_id,
                definition=locked,
                is_delete_job=is_delete_job,
                user=user,
                now=now,
            )
        self.jobs.announce_created(new)
        return inserted.job_id

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
