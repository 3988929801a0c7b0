"""How the parts of one node tell each other what happened, without importing each other.

The core announces creates, cancel requests and attempts completed through the API (callbacks);
the executor announces finished jobs. The
composition root (jobstore/cli/node.py) subscribes each part to what it needs: the executor
wakes on a create and stops a job on a cancel, the core wakes long polls on a finish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from jobstore.domain.models import JobState

Created = Callable[[str, bool], None]  # endpoint, whether the job waits for the limited claim
Scheduled = Callable[[datetime], None]
CancelRequested = Callable[[Sequence[int]], None]
Finished = Callable[[int, JobState], None]
Settled = Callable[[int, int], None]  # job id, attempt


class JobEvents:
    """Subscribers per event, called in the order they subscribed, on the event loop."""

    def __init__(self) -> None:
        self._created: list[Created] = []
        self._scheduled: list[Scheduled] = []
        self._cancel_requested: list[CancelRequested] = []
        self._finished: list[Finished] = []
        self._settled: list[Settled] = []

    def on_created(self, listener: Created) -> None:
        self._created.append(listener)

    def on_scheduled(self, listener: Scheduled) -> None:
        self._scheduled.append(listener)

    def on_cancel_requested(self, listener: CancelRequested) -> None:
        self._cancel_requested.append(listener)

    def on_finished(self, listener: Finished) -> None:
        self._finished.append(listener)

    def on_settled(self, listener: Settled) -> None:
        self._settled.append(listener)

    def created(self, endpoint: str, *, limited: bool = True) -> None:
        """A job for `endpoint` was committed on this node (`limited`: it waits for the limited
        claim, or may: a retried job)."""
        for listener in self._created:
            listener(endpoint, limited)

    def scheduled(self, run_at: datetime) -> None:
        """A job that waits until `run_at` was committed on this node."""
        for listener in self._scheduled:
            listener(run_at)

    def cancel_requested(self, job_ids: Sequence[int]) -> None:
        """Running jobs were asked to stop through this node."""
        for listener in self._cancel_requested:
            listener(job_ids)

    def finished(self, job_id: int, state: JobState) -> None:
        """An executor on this node committed a job's outcome."""
        for listener in self._finished:
            listener(job_id, state)

    def settled(self, job_id: int, attempt: int) -> None:
        """A running attempt was completed from outside its run (a callback through the
        API) on this node: the run waiting for it can end."""
        for listener in self._settled:
            listener(job_id, attempt)
