"""Tombstones remember who created the job, so a removed job stays private to its user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_tombstones") as batch:
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("project", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_tombstones") as batch:
        batch.drop_column("project")
        batch.drop_column("created_by")
