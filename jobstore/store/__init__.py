"""The only layer that speaks SQL. Callers own the transaction; nothing here commits."""

from jobstore.store.database import Database, normalize_url
from jobstore.store.jobs import JobStore, RescueResult
from jobstore.store.migrate import migrate_to_head

__all__ = ["Database", "JobStore", "RescueResult", "migrate_to_head", "normalize_url"]
