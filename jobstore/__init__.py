"""jobstore: a restart-safe asynchronous job service on SQL.

The names endpoint authors need are importable from here; they load on first use, so
`import jobstore.client` or the CLI's `jobs` commands do not pay for the codecs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobstore.domain.errors import JobFailed
    from jobstore.endpoints.context import JobCancelled, JobContext
    from jobstore.endpoints.definition import endpoint

__all__ = ["JobCancelled", "JobContext", "JobFailed", "endpoint"]
__version__ = "0.1.0"

_LAZY = {
    "JobFailed": "jobstore.domain.errors",
    "JobCancelled": "jobstore.endpoints.context",
    "JobContext": "jobstore.endpoints.context",
    "endpoint": "jobstore.endpoints.definition",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jobstore' has no attribute {name!r}")
