"""The only layer that speaks SQL. Callers own the transaction; nothing here commits."""

from jobstore.store.database import Database, normalize_url
from jobstore.store.driver import Driver
from jobstore.store.jobs import JobStore
from jobstore.store.migrate import migrate_to_head
from jobstore.store.runs import RescueResult

__all__ = ["Database", "Driver", "JobStore", "RescueResult", "migrate_to_head", "normalize_url"]
