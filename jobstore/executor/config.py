"""The executor's and the retention pass's settings, with their defaults and checks.

Kept apart from the services so the CLI can read the defaults without loading the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from jobstore.domain.errors import ConfigError
from jobstore.domain.models import FINAL_STATES, JobState
from jobstore.domain.retries import DEFAULT_MAX_BACKOFF_SECONDS


@dataclass(frozen=True)
class ExecutorConfig:
    node_id: str
    concurrency: int = 8
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 0.0  # 0: a third of the lease
    poll_seconds: float = 1.0
    tick_seconds: float = 0.5
    rescue_seconds: float = 0.0  # 0: half the lease
    cancel_grace_seconds: float = 5.0
    shutdown_seconds: float = 10.0
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS  # the cap of a retry's backoff

    def __post_init__(self) -> None:
        if not self.node_id or len(self.node_id) > 128:
            raise ConfigError("node id must be 1 to 128 characters")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        for name in ("lease_seconds", "heartbeat_seconds", "poll_seconds", "tick_seconds",
                     "rescue_seconds", "cancel_grace_seconds", "shutdown_seconds",
                     "max_backoff_seconds"):  # fmt: skip
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name.replace('_', ' ')} must be a finite number")
        if self.lease_seconds < 1:
            raise ConfigError("lease must be at least 1 second")
        for name in ("poll_seconds", "tick_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be more than 0")
        for name in ("cancel_grace_seconds", "shutdown_seconds", "max_backoff_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must not be negative")
        if self.heartbeat_seconds == 0:
            object.__setattr__(self, "heartbeat_seconds", self.lease_seconds / 3)
        if self.rescue_seconds == 0:
            object.__setattr__(self, "rescue_seconds", self.lease_seconds / 2)
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ConfigError("heartbeat interval must be shorter than the lease")


@dataclass(frozen=True)
class PrunerConfig:
    # Final state -> how long its jobs are kept after they finish; a missing state is kept.
    retention: Mapping[JobState, timedelta] = field(default_factory=dict)
    interval_seconds: float = 60.0
    batch_size: int | None = None  # jobs per batch; None: the database's (driver.prune_batch_size)
    # Per state and run: a huge backlog is worked off over several runs.
    max_per_run: int = 100_000

    def __post_init__(self) -> None:
        for state, keep in self.retention.items():
            if state not in FINAL_STATES:
                raise ConfigError(f"retention applies to finished states, not {state.value!r}")
            if keep < timedelta(0):
                raise ConfigError("retention must not be negative")
        if not (math.isfinite(self.interval_seconds) and self.interval_seconds > 0):
            raise ConfigError("prune interval must be a positive number of seconds")
        if (self.batch_size is not None and self.batch_size < 1) or self.max_per_run < 1:
            raise ConfigError("prune batch size and jobs per run must be at least 1")

    @property
    def enabled(self) -> bool:
        return bool(self.retention)
