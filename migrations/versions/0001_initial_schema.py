"""Initial schema: jobs and job_tombstones.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", JOB_ID, autoincrement=True, nullable=False),
        sa.Column("job_tag", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("request_encoding", sa.String(16), nullable=False),
        sa.Column("request_data", sa.LargeBinary(), nullable=True),
        sa.Column("request_text", sa.Text(), nullable=True),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("status_map", sa.JSON(), nullable=False),
        sa.Column("response_encoding", sa.String(16), nullable=True),
        sa.Column("response_data", sa.LargeBinary(), nullable=True),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("remove_on_complete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("retryable", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("project", sa.String(128), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'error', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name=op.f("ck_jobs_progress")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("job_tag", name=op.f("uq_jobs_job_tag")),
        sqlite_autoincrement=True,
    )
    queued = sa.text("status = 'queued'")
    running = sa.text("status = 'running'")
    op.create_index(
        "ix_jobs_queued", "jobs", ["job_id"], postgresql_where=queued, sqlite_where=queued
    )
    op.create_index(
        "ix_jobs_running",
        "jobs",
        ["owner", "lease_expires_at"],
        postgresql_where=running,
        sqlite_where=running,
    )
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])

    op.create_table(
        "job_tombstones",
        sa.Column("job_id", JOB_ID, autoincrement=False, nullable=False),
        sa.Column("job_tag", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_tombstones")),
        sa.UniqueConstraint("job_tag", name=op.f("uq_job_tombstones_job_tag")),
    )
    op.create_index("ix_job_tombstones_finished_at", "job_tombstones", ["finished_at"])


def downgrade() -> None:
    op.drop_table("job_tombstones")
    op.drop_table("jobs")
