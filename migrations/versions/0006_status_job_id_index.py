"""Listings by state and by user: (status, job_id) replaces (status, created_at).

(status, job_id) serves the newest jobs of a state and capped counts per state;
(created_by, status, job_id), partial on created_by, does the same for a user who sees only
their own jobs. The (status, created_at) index had no query left that needed it: time windows
of finished jobs read (status, finished_at).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_job_id", "jobs", ["status", "job_id"])
    op.create_index(
        "ix_jobs_created_by_status_job_id",
        "jobs",
        ["created_by", "status", "job_id"],
        postgresql_where=sa.text("created_by IS NOT NULL"),
        sqlite_where=sa.text("created_by IS NOT NULL"),
    )
    op.drop_index("ix_jobs_status_created_at", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])
    op.drop_index("ix_jobs_created_by_status_job_id", table_name="jobs")
    op.drop_index("ix_jobs_status_job_id", table_name="jobs")
