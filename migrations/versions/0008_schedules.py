"""Recurring schedules: the `schedules` table.

One row per schedule: what each fire creates (endpoint, request, job options), when it fires
(cron in a time zone, or every N seconds; start and end; the misfire policy), and where it
stands (enabled, next and last fire time, the last job). An index holds the schedules by
next fire time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from jobstore.store.tables import JobId, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("schedule_id", JobId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("request_encoding", sa.String(16), nullable=False),
        sa.Column("request_data", sa.LargeBinary(), nullable=True),
        sa.Column("request_text", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("cron", sa.String(256), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("every_seconds", sa.Float(), nullable=True),
        sa.Column("misfire", sa.String(8), nullable=False, server_default="skip"),
        sa.Column("start_at", UTCDateTime(), nullable=True),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("next_fire_at", UTCDateTime(), nullable=True),
        sa.Column("last_fire_at", UTCDateTime(), nullable=True),
        sa.Column("last_job_id", JobId, nullable=True),
        sa.Column("source", sa.String(16), nullable=False, server_default="api"),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_schedules_name")),
        sa.CheckConstraint(
            "(cron IS NULL) <> (every_seconds IS NULL)", name=op.f("ck_schedules_cron_or_every")
        ),
        sa.CheckConstraint("misfire IN ('skip', 'once', 'all')", name=op.f("ck_schedules_misfire")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedules_next_fire_at", "schedules", ["next_fire_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_next_fire_at", table_name="schedules")
    op.drop_table("schedules")
