"""Upstreams: job_attempts.callback_token_hash and jobs.upstream.

An attempt of a callback endpoint hands its upstream a token; the upstream completes the job
with it (POST /api/v1/jobs/{id}/complete). Only the token's SHA-256 is kept, on the attempt's
row, so a token of an older attempt is known as stale.

jobs.upstream marks a job of an endpoint nobody declared, run on a Kinetica upstream
('kinetica-upstream'): nodes with an upstream claim those and their declared endpoints' jobs,
never the jobs of endpoints only other nodes declare.

Both nullable, no default: added in place on both databases (no rebuild of the WITHOUT ROWID
table on SQLite).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job_attempts", sa.Column("callback_token_hash", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("upstream", sa.String(32), nullable=True))


def downgrade() -> None:
    # In place on SQLite too (3.35 and later): a batch rebuild would trip job_attempts_open.
    op.drop_column("job_attempts", "callback_token_hash")
    op.drop_column("jobs", "upstream")
