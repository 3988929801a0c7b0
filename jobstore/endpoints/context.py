"""What a handler sees of its job: progress reporting, cancellation, and a token for an outside
service that completes the job later (callback endpoints)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from collections.abc import Awaitable, Callable

# Stores the hash of an attempt's callback token (the executor's side); False when the attempt
# no longer holds its job.
TokenIssuer = Callable[[str], Awaitable[bool]]


def token_hash(token: str) -> str:
    """What is kept of a callback token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class JobCancelled(Exception):
    """Raised inside a handler (by `check_cancelled` or `sleep`) once the job is cancelled."""


class JobContext:
    """Handed to every handler. Safe to use from the event loop and from worker threads."""

    def __init__(
        self,
        *,
        job_id: int,
        job_tag: str,
        endpoint: str,
        attempt: int,
        issue_token: TokenIssuer | None = None,
    ) -> None:
        self.job_id = job_id
        self.job_tag = job_tag
        self.endpoint = endpoint
        self.attempt = attempt
        self._cancel = threading.Event()
        self._cancel_requested = False
        self._timed_out = False
        self._issue_token = issue_token
        self.awaiting_callback = False
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

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt at this job, and no other job's: what an upstream
        service may use to recognise a call it already had (a node died mid-call)."""
        return f"jobstore-{self.job_id}-{self.job_tag}"

    # -- cancellation -----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether the handler should stop: its job was cancelled, timed out, or is no longer
        this attempt's."""
        return self._cancel.is_set()

    @property
    def cancel_requested(self) -> bool:
        """Whether someone asked to cancel the job (not a timeout, a stop or a lost lease)."""
        return self._cancel_requested

    @property
    def timed_out(self) -> bool:
        """Whether it was told to stop because the job's timeout_seconds ran out."""
        return self._timed_out

    def cancel(self, *, requested: bool = True, timed_out: bool = False) -> None:
        """Tell the handler to stop (the executor's side): on a cancel request (`requested`),
        or because its time ran out (`timed_out`), or else (a stop, a lost lease)."""
        self._cancel_requested = self._cancel_requested or requested
        self._timed_out = self._timed_out or timed_out
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

    # -- completion from outside ------------------------------------------------------------

    async def callback_token(self) -> str:
        """A token (kept only as a hash) with which an outside service completes this attempt,
        or reports its progress, through `POST /api/v1/jobs/{id}/complete` and `/progress`
        (header X-Jobstore-Job-Token). Only this attempt's token is taken: once the job runs
        again, or ends, the token is refused."""
        if self._issue_token is None:
            raise RuntimeError("this job's executor cannot issue callback tokens")
        token = secrets.token_urlsafe(32)
        if not await self._issue_token(token_hash(token)):
            raise JobCancelled(f"job {self.job_id} attempt {self.attempt} no longer holds its job")
        return token

    async def wait_for_callback(self) -> None:
        """Wait until the job is completed through the API; the attempt then ends without a
        result of its own (the completion is recorded already). A timeout or a cancel ends
        the wait as it ends any handler."""
        self.awaiting_callback = True
        await asyncio.Event().wait()  # the executor cancels this task when the job is settled
