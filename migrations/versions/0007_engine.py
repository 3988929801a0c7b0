"""The job engine: priorities, delayed jobs (`scheduled`), retries, timeouts, attempt history.

jobs gains priority, run_at, retry_errors, backoff_seconds and timeout_seconds; its status
check admits `scheduled`; the claim index orders by priority, then job id; a partial index holds
the scheduled rows by run_at. job_attempts records every run: keyed by (job_id, attempt) with
no other index and no foreign key, WITHOUT ROWID on SQLite, fillfactor 70 on PostgreSQL (each
row is written at the run's start and updated at its end; the store deletes it with its job).

SQLite cannot alter a CHECK constraint, so the jobs table is rebuilt there (rows, ids and the
AUTOINCREMENT counter kept), and two triggers on jobs open and close attempts there. On
PostgreSQL every step is an ALTER, and the claim and finish statements write the attempts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from jobstore.store.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATES = "status IN ('queued', 'running', 'done', 'error', 'cancelled')"
_NEW_STATES = "status IN ('scheduled', 'queued', 'running', 'done', 'error', 'cancelled')"
_OUTCOMES = "outcome IN ('done', 'error', 'timeout', 'lost', 'cancelled', 'given_back')"
# SQLite has no INSERT or UPDATE inside a WITH, so a claim or a finish would need a statement
# more for its attempts; these triggers write them inside the claim's and the finish's own
# UPDATE. (A rebuild of jobs drops them: a later migration that rebuilds it must recreate them.)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER job_attempts_open AFTER UPDATE OF status ON jobs
    WHEN OLD.status = 'queued' AND NEW.status = 'running'
    BEGIN
        INSERT INTO job_attempts (job_id, attempt, node, started_at)
        VALUES (NEW.job_id, NEW.attempt, NEW.owner, NEW.started_at);
    END""",
    """CREATE TRIGGER job_attempts_close AFTER UPDATE OF status ON jobs
    WHEN OLD.status = 'running' AND NEW.status IN ('done', 'error', 'cancelled')
    BEGIN
        UPDATE job_attempts SET
            finished_at = NEW.finished_at,
            outcome = NEW.status,
            error_message = CASE WHEN NEW.status = 'done' THEN NULL
                                 ELSE json_extract(NEW.status_map, '$.error_message') END
        WHERE job_id = NEW.job_id AND attempt = NEW.attempt AND outcome IS NULL;
    END""",
)
_QUEUED = sa.text("status = 'queued'")
_SCHEDULED = sa.text("status = 'scheduled'")


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _jobs_counter() -> int | None:
    """SQLite's AUTOINCREMENT counter of jobs: a rebuilt table must not hand out old ids."""
    return (
        op.get_bind()
        .execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"))
        .scalar()
    )


def _restore_counter(seq: int | None) -> None:
    if seq is not None:
        op.get_bind().execute(
            sa.text("UPDATE sqlite_sequence SET seq = MAX(seq, :seq) WHERE name = 'jobs'"),
            {"seq": seq},
        )


def _rebuild_jobs(change: Callable[[Any], None]) -> None:
    """Apply `change` to jobs in one batch: a rebuilt table on SQLite that keeps AUTOINCREMENT
    and its counter (ids of deleted jobs are never handed out again), ALTERs on PostgreSQL."""
    seq = _jobs_counter() if _is_sqlite() else None
    with op.batch_alter_table(
        "jobs", recreate="always" if _is_sqlite() else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:  # fmt: skip
        change(batch)
    _restore_counter(seq)


def _status_check(check: str) -> Callable[[Any], None]:
    def change(batch: Any) -> None:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint("status", check)

    return change


def upgrade() -> None:
    def change(batch: Any) -> None:
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("run_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("retry_errors", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("backoff_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("timeout_seconds", sa.Float(), nullable=True))
        _status_check(_NEW_STATES)(batch)

    _rebuild_jobs(change)
    # The rebuild on SQLite recreates indexes from the reflected table; replace the claim
    # index by name either way.
    op.drop_index("ix_jobs_queued", table_name="jobs")
    op.create_index(
        "ix_jobs_queued",
        "jobs",
        [sa.text("priority DESC"), "job_id"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    op.create_index(
        "ix_jobs_scheduled",
        "jobs",
        ["run_at"],
        postgresql_where=_SCHEDULED,
        sqlite_where=_SCHEDULED,
    )
    op.create_table(
        "job_attempts",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(_OUTCOMES, name=op.f("ck_job_attempts_outcome")),
        sa.PrimaryKeyConstraint("job_id", "attempt", name=op.f("pk_job_attempts")),
        sqlite_with_rowid=False,
        postgresql_with={"fillfactor": 70},
    )
    if _is_sqlite():
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    if _is_sqlite():
        for name in ("job_attempts_open", "job_attempts_close"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("job_attempts")
    op.drop_index("ix_jobs_scheduled", table_name="jobs")
    op.drop_index("ix_jobs_queued", table_name="jobs")
    # Scheduled jobs become queued: an older jobstore runs them now rather than never.
    op.execute("UPDATE jobs SET status = 'queued' WHERE status = 'scheduled'")

    def change(batch: Any) -> None:
        _status_check(_OLD_STATES)(batch)
        for column in ("timeout_seconds", "backoff_seconds", "retry_errors", "run_at", "priority"):
            batch.drop_column(column)

    _rebuild_jobs(change)
    op.create_index(
        "ix_jobs_queued", "jobs", ["job_id"], postgresql_where=_QUEUED, sqlite_where=_QUEUED
    )
