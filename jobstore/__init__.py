"""jobstore: a restart-safe asynchronous job service on SQL."""

from jobstore.errors import JobFailed
from jobstore.executor.registry import JobContext, endpoint

__all__ = ["JobContext", "JobFailed", "endpoint"]
__version__ = "0.1.0"
