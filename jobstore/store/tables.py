"""The schema's source of truth. Alembic migrations must produce exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text ("2026-11-22 08:24:40.123456"),
    which sorts and compares correctly against `datetime('now')` in ad-hoc queries.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# SQLite only guarantees never-reused ids with INTEGER PRIMARY KEY AUTOINCREMENT.
JobId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

STATES = ("scheduled", "queued", "running", "done", "error", "cancelled")
OUTCOMES = ("done", "error", "timeout", "lost", "cancelled", "given_back")
_outcomes_sql = ", ".join(f"'{s}'" for s in OUTCOMES)
ATTEMPTS_FILLFACTOR = 70
_states_sql = ", ".join(f"'{s}'" for s in STATES)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", JobId, primary_key=True, autoincrement=True),
    sa.Column("job_tag", sa.String(128), nullable=False),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("request_encoding", sa.String(16), nullable=False),
    sa.Column("request_data", sa.LargeBinary(), nullable=True),
    sa.Column("request_text", sa.Text(), nullable=True),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("options", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.SmallInteger(), nullable=False, server_default="0"),
    sa.Column("status_map", sa.JSON(), nullable=False),
    sa.Column("response_encoding", sa.String(16), nullable=True),
    sa.Column("response_data", sa.LargeBinary(), nullable=True),
    sa.Column("response_text", sa.Text(), nullable=True),
    sa.Column("remove_on_complete", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("retryable", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The engine's options: higher priority starts first; a `scheduled` job waits for run_at;
    # retry_errors re-runs a failed handler after backoff_seconds (doubling, with jitter).
    sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"),
    sa.Column("run_at", UTCDateTime(), nullable=True),
    sa.Column("retry_errors", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("backoff_seconds", sa.Float(), nullable=True),
    sa.Column("timeout_seconds", sa.Float(), nullable=True),
    # Jobs with a key run at most as many at once as the key's limit (concurrency_limits, or
    # the endpoint's concurrency_limit), across nodes; see store/limits.py.
    sa.Column("concurrency_key", sa.String(128), nullable=True),
    # The kind of upstream that runs a job of an endpoint nobody declared (0010), else NULL.
    sa.Column("upstream", sa.String(32), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("project", sa.String(128), nullable=True),
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.UniqueConstraint("job_tag"),
    sa.CheckConstraint(f"status IN ({_states_sql})", name="status"),
    sa.CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
    sqlite_autoincrement=True,
)

# Claim: the highest priority first, then the oldest, read through a partial index that holds
# only queued rows without a concurrency key, in exactly that order.
_QUEUED_FREE = sa.and_(jobs.c.status == "queued", jobs.c.concurrency_key.is_(None))
sa.Index(
    "ix_jobs_queued",
    jobs.c.priority.desc(),
    jobs.c.job_id,
    postgresql_where=_QUEUED_FREE,
    sqlite_where=_QUEUED_FREE,
)
# The limited claim: queued rows with a key, per key in claim order (and the keys themselves,
# walked one by one).
_QUEUED_KEYED = sa.and_(jobs.c.status == "queued", jobs.c.concurrency_key.is_not(None))
sa.Index(
    "ix_jobs_queued_keyed",
    jobs.c.concurrency_key,
    jobs.c.priority.desc(),
    jobs.c.job_id,
    postgresql_where=_QUEUED_KEYED,
    sqlite_where=_QUEUED_KEYED,
)
# Due jobs: scheduled rows only, by the time they may start.
sa.Index(
    "ix_jobs_scheduled",
    jobs.c.run_at,
    postgresql_where=jobs.c.status == "scheduled",
    sqlite_where=jobs.c.status == "scheduled",
)
# Heartbeat and rescue: running rows only, by owner and lease.
sa.Index(
    "ix_jobs_running",
    jobs.c.owner,
    jobs.c.lease_expires_at,
    postgresql_where=jobs.c.status == "running",
    sqlite_where=jobs.c.status == "running",
)
# The newest jobs of one state (job_id order) and capped counts per state: a listing by state
# reads one page of entries however rare the state, instead of scanning back through the table.
sa.Index("ix_jobs_status_job_id", jobs.c.status, jobs.c.job_id)
# The same for one user's jobs (with --auth required, users who are not admins see only their
# own). Partial: jobs created with auth off have no created_by and never write to it.
sa.Index(
    "ix_jobs_created_by_status_job_id",
    jobs.c.created_by,
    jobs.c.status,
    jobs.c.job_id,
    postgresql_where=jobs.c.created_by.is_not(None),
    sqlite_where=jobs.c.created_by.is_not(None),
)
# Retention: the oldest finished jobs of a state. Partial, so creates and claims never touch it.
sa.Index(
    "ix_jobs_status_finished_at",
    jobs.c.status,
    jobs.c.finished_at,
    postgresql_where=jobs.c.finished_at.is_not(None),
    sqlite_where=jobs.c.finished_at.is_not(None),
)

# One row per run of a job, written in the transactions that start and end the run; deleted
# with its job by the store (remove_job_on_complete, retention). Every run writes it twice, so
# it is kept lean: no index but its key (WITHOUT ROWID on SQLite: the key is the table), on
# PostgreSQL room on each page for the closing UPDATE to stay on it (a HOT update), and no
# foreign key to jobs: its check on every claimed row cost 8% of the drain rate.
job_attempts = sa.Table(
    "job_attempts",
    metadata,
    sa.Column("job_id", JobId, primary_key=True, autoincrement=False),
    sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("node", sa.String(128), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),  # NULL while the attempt runs
    sa.Column("error_message", sa.Text(), nullable=True),
    # SHA-256 (hex) of the token a callback endpoint's attempt handed its upstream (0010).
    sa.Column("callback_token_hash", sa.String(64), nullable=True),
    sa.CheckConstraint(f"outcome IN ({_outcomes_sql})", name="outcome"),
    sqlite_with_rowid=False,
    postgresql_with={"fillfactor": ATTEMPTS_FILLFACTOR},
)

job_tombstones = sa.Table(
    "job_tombstones",
    metadata,
    sa.Column("job_id", JobId, primary_key=True, autoincrement=False),
    sa.Column("job_tag", sa.String(128), nullable=False),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("project", sa.String(128), nullable=True),
    sa.UniqueConstraint("job_tag"),
)
sa.Index("ix_job_tombstones_finished_at", job_tombstones.c.finished_at)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", JobId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=True),
    sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

# Tokens are stored as the SHA-256 of the token; the token itself is shown once, at creation.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", JobId, primary_key=True, autoincrement=True),
    sa.Column("user_id", JobId, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("project", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("token_hash"),
    sqlite_autoincrement=True,
)
sa.Index("ix_api_tokens_user_id", api_tokens.c.user_id)

# Huawei CDM facade: named job definitions, and which jobstore job each start created.
cdm_jobs = sa.Table(
    "cdm_jobs",
    metadata,
    sa.Column("cdm_job_id", JobId, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("cluster_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(240), nullable=False),
    sa.Column("job_type", sa.String(32), nullable=False),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("project", "cluster_id", "name"),
    sqlite_autoincrement=True,
)

cdm_submissions = sa.Table(
    "cdm_submissions",
    metadata,
    # The jobstore job this start created (no foreign key: remove_job_on_complete may delete
    # the job row; its tombstone keeps the final state).
    sa.Column("job_id", JobId, primary_key=True, autoincrement=False),
    sa.Column("cdm_job_id", JobId, nullable=False),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("cluster_id", sa.String(128), nullable=False),
    sa.Column("job_name", sa.String(240), nullable=False),
    sa.Column("is_delete_job", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
sa.Index(
    "ix_cdm_submissions_job",
    cdm_submissions.c.project,
    cdm_submissions.c.cluster_id,
    cdm_submissions.c.job_name,
    cdm_submissions.c.job_id,
)

# Recurring schedules: each fire time creates one ordinary job, tagged from the schedule and the
# fire time (see store/schedules.py), so nodes firing together create it once.
MISFIRES = ("skip", "once", "all")
_misfires_sql = ", ".join(f"'{m}'" for m in MISFIRES)
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("schedule_id", JobId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    # What each fire creates: a job of this endpoint with this request and these options.
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("request_encoding", sa.String(16), nullable=False),
    sa.Column("request_data", sa.LargeBinary(), nullable=True),
    sa.Column("request_text", sa.Text(), nullable=True),
    sa.Column("options", sa.JSON(), nullable=False),
    # When: a cron expression read in `timezone`, or every `every_seconds`.
    sa.Column("cron", sa.String(256), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("every_seconds", sa.Float(), nullable=True),
    sa.Column("misfire", sa.String(8), nullable=False, server_default="skip"),
    sa.Column("start_at", UTCDateTime(), nullable=True),
    sa.Column("end_at", UTCDateTime(), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("next_fire_at", UTCDateTime(), nullable=True),  # NULL: no fire time left
    sa.Column("last_fire_at", UTCDateTime(), nullable=True),
    sa.Column("last_job_id", JobId, nullable=True),
    sa.Column("source", sa.String(16), nullable=False, server_default="api"),  # api, code, cdm
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name"),
    sa.CheckConstraint("(cron IS NULL) <> (every_seconds IS NULL)", name="cron_or_every"),
    sa.CheckConstraint(f"misfire IN ({_misfires_sql})", name="misfire"),
    sqlite_autoincrement=True,
)
# Due schedules, by their next fire time (the query filters the enabled ones).
sa.Index("ix_schedules_next_fire_at", schedules.c.next_fire_at)

# Named concurrency limits, set at run time (`jobstore limits set KEY N`): at most
# `max_running` jobs with this concurrency key run at once, across nodes. A key without a row
# takes its endpoint's concurrency_limit, or runs unlimited.
concurrency_limits = sa.Table(
    "concurrency_limits",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("max_running", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=True),
    sa.CheckConstraint("max_running >= 0", name="max_running"),
)
