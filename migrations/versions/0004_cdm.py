"""CDM facade: named job definitions and their submissions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cdm_jobs",
        sa.Column("cdm_job_id", ID, autoincrement=True, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("cluster_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(240), nullable=False),
        sa.Column("job_type", sa.String(32), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("cdm_job_id", name=op.f("pk_cdm_jobs")),
        sa.UniqueConstraint(
            "project", "cluster_id", "name", name=op.f("uq_cdm_jobs_project_cluster_id_name")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "cdm_submissions",
        sa.Column("job_id", ID, autoincrement=False, nullable=False),
        sa.Column("cdm_job_id", ID, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("cluster_id", sa.String(128), nullable=False),
        sa.Column("job_name", sa.String(240), nullable=False),
        sa.Column("is_delete_job", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_cdm_submissions")),
    )
    op.create_index(
        "ix_cdm_submissions_job",
        "cdm_submissions",
        ["project", "cluster_id", "job_name", "job_id"],
    )


def downgrade() -> None:
    op.drop_table("cdm_submissions")
    op.drop_table("cdm_jobs")
