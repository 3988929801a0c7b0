"""Concurrency limits: jobs.concurrency_key, the `concurrency_limits` table, and claim indexes
that keep keyed and unkeyed queued jobs apart.

ix_jobs_queued now holds only queued jobs without a key (the plain claim reads nothing else);
ix_jobs_queued_keyed holds the keyed ones by key, in claim order. Both are partial: on SQLite
the column is added in place (nullable, no rebuild), the indexes dropped and created.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from jobstore.store.tables import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUED = sa.text("status = 'queued'")
_QUEUED_FREE = sa.text("status = 'queued' AND concurrency_key IS NULL")
_QUEUED_KEYED = sa.text("status = 'queued' AND concurrency_key IS NOT NULL")


def _claim_index(where: sa.TextClause) -> None:
    op.create_index(
        "ix_jobs_queued",
        "jobs",
        [sa.text("priority DESC"), "job_id"],
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    op.add_column("jobs", sa.Column("concurrency_key", sa.String(128), nullable=True))
    op.drop_index("ix_jobs_queued", table_name="jobs")
    _claim_index(_QUEUED_FREE)
    op.create_index(
        "ix_jobs_queued_keyed",
        "jobs",
        ["concurrency_key", sa.text("priority DESC"), "job_id"],
        postgresql_where=_QUEUED_KEYED,
        sqlite_where=_QUEUED_KEYED,
    )
    op.create_table(
        "concurrency_limits",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_concurrency_limits")),
        sa.CheckConstraint("max_running >= 0", name=op.f("ck_concurrency_limits_max_running")),
    )


def downgrade() -> None:
    op.drop_table("concurrency_limits")
    op.drop_index("ix_jobs_queued_keyed", table_name="jobs")
    op.drop_index("ix_jobs_queued", table_name="jobs")
    _claim_index(_QUEUED)
    op.drop_column("jobs", "concurrency_key")
