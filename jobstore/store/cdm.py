"""SQL for the CDM facade: job definitions and submissions (each one a jobstore job)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.domain.definitions import Definition, SubmissionRow
from jobstore.domain.models import ACTIVE_STATES, FINAL_STATES
from jobstore.store.driver import Driver
from jobstore.store.tables import cdm_jobs, cdm_submissions, job_tombstones, jobs

__all__ = ["CdmStore", "Definition", "SubmissionRow"]


_DEFINITION_COLUMNS = [
    cdm_jobs.c.cdm_job_id,
    cdm_jobs.c.project,
    cdm_jobs.c.cluster_id,
    cdm_jobs.c.name,
    cdm_jobs.c.job_type,
    cdm_jobs.c.definition,
    cdm_jobs.c.created_by,
    cdm_jobs.c.created_at,
    cdm_jobs.c.updated_by,
    cdm_jobs.c.updated_at,
]


def _scope(project: str, cluster_id: str) -> list[sa.ColumnElement[bool]]:
    return [cdm_jobs.c.project == project, cdm_jobs.c.cluster_id == cluster_id]


class CdmStore:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    # -- definitions ------------------------------------------------------------------------

    async def definition_insert(
        self,
        conn: AsyncConnection,
        *,
        project: str,
        cluster_id: str,
        name: str,
        job_type: str,
        definition: dict[str, Any],
        user: str | None,
        now: datetime,
    ) -> bool:
        """False when the name is taken in this project and cluster."""
        name_key = [cdm_jobs.c.project, cdm_jobs.c.cluster_id, cdm_jobs.c.name]
        result = await conn.execute(
            self.driver.insert_skip_conflict(cdm_jobs, name_key)
            .values(
                project=project,
                cluster_id=cluster_id,
                name=name,
                job_type=job_type,
                definition=definition,
                created_by=user,
                created_at=now,
                updated_by=user,
                updated_at=now,
            )
            .returning(cdm_jobs.c.cdm_job_id)
        )
        return result.first() is not None

    async def definition_get(
        self,
        conn: AsyncConnection,
        project: str,
        cluster_id: str,
        name: str,
        *,
        lock: bool = False,
    ) -> Definition | None:
        """One definition; `lock` holds it until the transaction ends (starts serialise)."""
        stmt = sa.select(*_DEFINITION_COLUMNS).where(
            *_scope(project, cluster_id), cdm_jobs.c.name == name
        )
        if lock:
            stmt = self.driver.select_for_update(stmt)
        row = (await conn.execute(stmt)).first()
        return Definition(*row) if row else None

    async def definition_list(
        self,
        conn: AsyncConnection,
        project: str,
        cluster_id: str,
        *,
        name_filter: str | None,
        job_type: str,
        offset: int,
        limit: int,
    ) -> tuple[int, list[Definition]]:
        where = [*_scope(project, cluster_id), cdm_jobs.c.job_type == job_type]
        if name_filter:
            escaped = name_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            # Case-insensitive on both databases (SQLite's LIKE already is, PostgreSQL's not).
            where.append(cdm_jobs.c.name.ilike(f"%{escaped}%", escape="\\"))
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(cdm_jobs).where(*where))
        ).scalar_one()
        rows = await conn.execute(
            sa.select(*_DEFINITION_COLUMNS)
            .where(*where)
            .order_by(cdm_jobs.c.name)
            .offset(offset)
            .limit(limit)
        )
        return int(total), [Definition(*r) for r in rows.all()]

    async def definition_update(
        self,
        conn: AsyncConnection,
        *,
        project: str,
        cluster_id: str,
        name: str,
        job_type: str,
        definition: dict[str, Any],
        user: str | None,
        now: datetime,
    ) -> bool:
        result = await conn.execute(
            sa.update(cdm_jobs)
            .where(*_scope(project, cluster_id), cdm_jobs.c.name == name)
            .values(job_type=job_type, definition=definition, updated_by=user, updated_at=now)
        )
        return result.rowcount == 1

    async def definition_delete(
        self, conn: AsyncConnection, project: str, cluster_id: str, name: str
    ) -> bool:
        result = await conn.execute(
            sa.delete(cdm_jobs).where(*_scope(project, cluster_id), cdm_jobs.c.name == name)
        )
        return result.rowcount == 1

    async def definition_reap(self, conn: AsyncConnection) -> int:
        """Delete definitions whose "delete after run" submission has ended."""
        final = [s.value for s in FINAL_STATES]
        ended = (
            sa.select(cdm_submissions.c.cdm_job_id)
            .select_from(cdm_submissions.outerjoin(jobs, jobs.c.job_id == cdm_submissions.c.job_id))
            .where(
                cdm_submissions.c.is_delete_job,
                sa.or_(jobs.c.job_id.is_(None), jobs.c.status.in_(final)),
            )
        )
        result = await conn.execute(sa.delete(cdm_jobs).where(cdm_jobs.c.cdm_job_id.in_(ended)))
        return result.rowcount

    # -- submissions ------------------------------------------------------------------------

    async def submission_insert(
        self,
        conn: AsyncConnection,
        *,
        job_id: int,
        definition: Definition,
        is_delete_job: bool,
        user: str | None,
        now: datetime,
    ) -> None:
        await conn.execute(
            sa.insert(cdm_submissions).values(
                job_id=job_id,
                cdm_job_id=definition.cdm_job_id,
                project=definition.project,
                cluster_id=definition.cluster_id,
                job_name=definition.name,
                is_delete_job=is_delete_job,
                created_by=user,
                created_at=now,
            )
        )

    async def submission_prune(self, conn: AsyncConnection, job_ids: Sequence[int]) -> None:
        """Delete the submissions of jobs the retention pass deleted."""
        if job_ids:
            await conn.execute(
                sa.delete(cdm_submissions).where(cdm_submissions.c.job_id.in_(job_ids))
            )

    async def submission_list(
        self,
        conn: AsyncConnection,
        project: str,
        cluster_id: str,
        name: str,
        *,
        offset: int = 0,
        limit: int = 1,
    ) -> tuple[int, list[SubmissionRow]]:
        """A definition's submissions, newest first, with their jobs' states."""
        s, j, t = cdm_submissions, jobs, job_tombstones
        where = [s.c.project == project, s.c.cluster_id == cluster_id, s.c.job_name == name]
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(s).where(*where))
        ).scalar_one()
        stmt = (
            sa.select(
                s.c.job_id,
                s.c.job_name,
                s.c.is_delete_job,
                s.c.created_by,
                s.c.created_at,
                sa.func.coalesce(j.c.status, t.c.status, "error").label("status"),
                sa.func.coalesce(j.c.job_tag, t.c.job_tag, "").label("job_tag"),
                sa.func.coalesce(j.c.progress, 0).label("progress"),
                j.c.started_at,
                j.c.updated_at,
                sa.func.coalesce(j.c.finished_at, t.c.finished_at).label("finished_at"),
                j.c.status_map,
                j.c.response_text,
            )
            .select_from(
                s.outerjoin(j, j.c.job_id == s.c.job_id).outerjoin(t, t.c.job_id == s.c.job_id)
            )
            .where(*where)
            .order_by(s.c.job_id.desc())
            .offset(offset)
            .limit(limit)
        )
        rows = [
            SubmissionRow(**{**r._mapping, "status_map": dict(r.status_map or {})})
            for r in (await conn.execute(stmt)).all()
        ]
        return int(total), rows

    async def submission_active(
        self, conn: AsyncConnection, project: str, cluster_id: str, name: str
    ) -> int | None:
        """The job id of an unfinished (scheduled, queued or running) submission of this
        definition, if any."""
        stmt = (
            sa.select(cdm_submissions.c.job_id)
            .join(jobs, jobs.c.job_id == cdm_submissions.c.job_id)
            .where(
                cdm_submissions.c.project == project,
                cdm_submissions.c.cluster_id == cluster_id,
                cdm_submissions.c.job_name == name,
                jobs.c.status.in_([s.value for s in ACTIVE_STATES]),
            )
            .limit(1)
        )
        job_id: int | None = (await conn.execute(stmt)).scalar_one_or_none()
        return job_id
