"""What a handler sees of its job: progress reporting and cancellation."""

from __future__ import annotations

import asyncio
import threading


class JobCancelled(Exception):
    """Raised inside a handler (by `check_cancelled` or `sleep`) once the job is cancelled."""


class JobContext:
    """Handed to every handler. Safe to use from the event loop and from worker threads."""

    def __init__(self, *, job_id: int, job_tag: str, endpoint: str, attempt: int) -> None:
        self.job_id = job_id
        self.job_tag = job_tag
        self.endpoint = endpoint
        self.attempt = attempt
        self._cancel = threading.Event()
        self._progress: int | None = None  # latest value not yet written
        self._status: dict[str, str] = {}

    # -- progress ---------------------------------------------------------------------------

    def set_progress(self, percent: float) -> None:
        """Report progress, 0-100. Cheap: the executor writes the latest value now and then."""
        self._progress = max(0, min(100, int(percent)))

    def take_progress(self) -> int | None:
        """The progress reported since the last call, if any (the executor's side)."""
        value, self._progress = self._progress, None
        return value

    def set_status(self, key: str, value: str) -> None:
        """Add an entry to the job's status map (stored when the job ends)."""
        self._status[str(key)] = str(value)

    @property
    def status_map(self) -> dict[str, str]:
        return dict(self._status)

    # -- cancellation -----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Mark the job cancelled (the executor's side)."""
        self._cancel.set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early (and raising JobCancelled) if the job is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            self.check_cancelled()
            await asyncio.sleep(min(left, 0.05))
        self.check_cancelled()
