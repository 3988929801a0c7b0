"""The executor: claims queued jobs with a lease, runs their handlers, records the outcome.

It runs its services in loops; each service also has a `run_once` that tests call directly:

    claim       (here) wake on create/NOTIFY/poll -> claim up to free capacity -> a task per job
    heartbeat   LeaseKeeper (leases.py): renew every lease this node holds in one UPDATE
    ticker      ProgressSync (leases.py): write progress, pick up cancel requests
    rescuer     Rescuer (rescuer.py): requeue (or end) jobs whose lease expired
    listener    the store's LISTEN for new jobs, where the database can

Stopping is soft first (finish running jobs up to a timeout), then hard (cancel them and give
them back to the queue, or end them `error` when their endpoint is not retryable).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from jobstore.codecs import decode_request, encode_response
from jobstore.codecs.jsontext import storable_text
from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.errors import JobFailed, JobstoreError, StoreUnavailable
from jobstore.domain.events import JobEvents
from jobstore.domain.inputs import MAX_NESTING_CEILING
from jobstore.domain.loops import wait_set
from jobstore.domain.models import FINAL_STATES, Claimed, JobState, Outcome, Payload
from jobstore.domain.retries import with_retry
from jobstore.endpoints.context import JobCancelled, JobContext
from jobstore.endpoints.registry import EndpointRegistry
from jobstore.executor.config import ExecutorConfig
from jobstore.executor.leases import LeaseKeeper, ProgressSync, TickResult
from jobstore.executor.rescuer import Rescuer
from jobstore.executor.running import Run, RunningJobs, cancelled_outcome, stopped_outcome
from jobstore.executor.scheduler import Scheduler
from jobstore.executor.tasks import Tasks
from jobstore.metrics import Metrics
from jobstore.store import Database, RescueResult
from jobstore.store.batch import GroupCommit
from jobstore.store.limits import LimitedClaim

log = logging.getLogger(__name__)

# Recording an outcome that failed is tried again after this long, doubling up to the most:
# for as long as the job's lease holds while the database is away, FINISH_REFUSED_TRIES times
# when the database refuses the write.
FINISH_FIRST_RETRY_SECONDS = 0.2
FINISH_MAX_RETRY_SECONDS = 2.0
FINISH_REFUSED_TRIES = 5
# A node kept busy by plain jobs still looks at limited ones this often (store/limits.py).
LIMITED_LOOK_SECONDS = 5.0


class Executor:
    def __init__(
        self,
        db: Database,
        registry: EndpointRegistry,
        config: ExecutorConfig,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self.db = db
        self.store = db.jobs
        self.registry = registry
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = metrics
        # Told (job_id, state) once an outcome is committed; e.g. to wake long polls.
        self.events = events or JobEvents()
        self._running = RunningJobs(
            registry, self.clock, cancel_grace_seconds=config.cancel_grace_seconds
        )
        self.lease_keeper = LeaseKeeper(
            db,
            self._running,
            self.clock,
            node_id=config.node_id,
            lease_seconds=config.lease_seconds,
        )
        self.progress = ProgressSync(db, self._running, self.clock, finish=self._finish)
        self.rescuer = Rescuer(db, self.clock, on_requeued=self.wake, metrics=metrics)
        self.scheduler = Scheduler(
            db, self.clock, on_promoted=self.wake, max_wait_seconds=config.poll_seconds
        )
        self._side = Tasks()  # finishes and stops started from callbacks
        self._wake = asyncio.Event()
        # False once a claim found fewer jobs than it asked for: then a freed slot is no reason
        # to claim again (an empty claim costs a transaction); new work arrives through wake().
        self._queue_may_have_more = True
        # Whether a claim should look at jobs with a concurrency key or a limited endpoint
        # (store/limits.py): only when some may be claimable, or a poll interval has passed.
        self._limited_may_have_work = True
        self._limited_looked_at = 0.0
        self._plain_may_have_more = True  # whether the last plain claim filled its share
        self._threads = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix="jobstore-handler"
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Outcomes of jobs that end together are recorded in one transaction.
        self._finishes: GroupCommit[tuple[Claimed, Outcome], JobState | None] = GroupCommit(
            db, self._write_finish
        )
        self._stopping = False
        self._hard_stop = False
        self.failure: BaseException | None = None
        self.stopped = asyncio.Event()

    # -- public -----------------------------------------------------------------------------

    @property
    def running_job_ids(self) -> list[int]:
        return self._running.ids()

    @property
    def awaiting_callback_ids(self) -> list[int]:
        """The running jobs whose attempt waits to be completed through the API."""
        return [r.claimed.job_id for r in self._running if r.ctx.awaiting_callback]

    def wake(self, limited: bool = True) -> None:
        """A job was created: look for work now instead of at the next poll. `limited`: it
        waits for the limited claim (a concurrency key, an endpoint's global limit), or may."""
        self._queue_may_have_more = True
        if limited:
            self._limited_may_have_work = True
        else:
            self._plain_may_have_more = True
        self._wake.set()

    def request_cancel(self, job_ids: Sequence[int]) -> None:
        """Cancel requests made through this node reach its own jobs at once."""
        for job_id in job_ids:
            if (run := self._running.get(job_id)) is not None:
                self._running.begin_cancel(run)

    async def start(self) -> RescueResult:
        """Take back what this node owned before a restart, then start the loops."""
        async with self.db.transaction() as conn:
            rescued = await self.store.job_rescue_owned(
                conn, node=self.config.node_id, now=self.clock.now()
            )
        if rescued.total:
            log.warning(
                "node %s restarted: requeued %s, ended %s",
                self.config.node_id,
                rescued.requeued,
                rescued.ended,
            )
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("claim", self._claim_loop),
            (
                "heartbeat",
                self._every("heartbeat", self.config.heartbeat_seconds, self.heartbeat_once),
            ),
            ("ticker", self._every("ticker", self.config.tick_seconds, self.tick_once)),
            ("rescuer", self._every("rescuer", self.config.rescue_seconds, self.rescue_once)),
            ("scheduler", self.scheduler.run),
            # Returns at once where the database cannot listen (saying why, where it matters).
            ("listener", lambda: self.db.listen_for_new_jobs(self.wake)),
        ]
        for name, loop in loops:
            self._tasks.append(
                asyncio.create_task(self._supervise(name, loop), name=f"jobstore-{name}")
            )
        return rescued

    async def stop(self, wait_seconds: float | None = None) -> None:
        """Soft stop (let running jobs finish), then hard stop after `wait_seconds`."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        self._wake.set()
        timeout = self.config.shutdown_seconds if wait_seconds is None else wait_seconds
        pending = [r.task for r in self._running if r.task is not None]
        if pending:
            log.info("stopping: waiting up to %.1fs for %d running jobs", timeout, len(pending))
            await asyncio.wait(pending, timeout=timeout)
        if self._running:
            await self._hard_stop_jobs()
        await self._side.wait()  # cancels recorded from callbacks
        await self._finishes.drain()  # outcomes still being written
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.stopped.set()

    # -- claim and run ----------------------------------------------------------------------

    async def claim_once(self, *, woken: bool = False) -> list[Claimed]:
        """Claim up to the free capacity and start a task for each job. `woken`: the claim
        follows a wake-up (new work), not an idle poll."""
        free = self.config.concurrency - len(self._running)
        if free <= 0 or self._stopping:
            return []
        began = time.perf_counter()
        now = self.clock.now()  # the moment the claim is decided: started_at
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        limits = self.registry.limits()
        plain = [name for name, limit in limits.items() if limit.global_limit is None]
        limited = LimitedClaim()
        looks = self._limited_due(woken)
        # With work of both kinds waiting, each gets half the free slots: neither starves.
        share = max(1, (free + 1) // 2) if self._plain_may_have_more else free
        async with self.db.transaction() as conn:
            if looks:
                limited = await self.db.limits.job_claim_limited(
                    conn,
                    node=self.config.node_id,
                    endpoints=limits,
                    limit=share,
                    now=now,
                    lease_until=lease_until,
                )
            asked = free - len(limited.claimed)
            claimed = await self.store.job_claim(
                conn,
                node=self.config.node_id,
                endpoints=plain,
                limit=asked,
                now=now,
                lease_until=lease_until,
                with_upstream=self.registry.runs_any_name,  # a Kinetica upstream
            )
        if looks:
            self._limited_looked_at = time.monotonic()
            # Jobs held back by a limit wait for a limited job to end, not for the next claim.
            self._limited_may_have_work = limited.looked and len(limited.claimed) >= share
        if asked > 0:
            self._plain_may_have_more = len(claimed) >= asked
        self._queue_may_have_more = self._plain_may_have_more or self._limited_may_have_work
        claimed = limited.claimed + claimed
        if self.metrics is not None:
            self.metrics.claim_observed(time.perf_counter() - began, len(claimed))
            if limited.held_back:
                self.metrics.jobs_held_back(limited.held_back)
        self._start(claimed, lease_until)
        return claimed

    def _limited_due(self, woken: bool) -> bool:
        """Whether this claim looks at keyed and limited jobs too: when some may be claimable
        (a limited job was created, a limited job ended here, the last look filled its share);
        and, in case a limited job ended on another node, at an idle poll once a poll interval,
        or every LIMITED_LOOK_SECONDS on a node kept busy by plain work (not on every wake-up:
        that would cost plain jobs a statement at the moment they wait to start)."""
        if self._limited_may_have_work:
            return True
        since = time.monotonic() - self._limited_looked_at
        return since >= LIMITED_LOOK_SECONDS or (not woken and since >= self.config.poll_seconds)

    def _start(self, claimed: list[Claimed], lease_until: datetime) -> None:
        """A task for each claimed job (after the claim's commit)."""
        for job in claimed:
            if (stale := self._running.get(job.job_id)) is not None:
                # Our own older attempt lost its lease (say, the loop was blocked) and we
                # claimed the job again: the old attempt must stop and write nothing.
                self._running.drop(stale, "it was claimed again by a newer attempt")
            run = Run(
                job,
                JobContext(
                    job_id=job.job_id,
                    job_tag=job.job_tag,
                    endpoint=job.endpoint,
                    attempt=job.attempt,
                    issue_token=functools.partial(self._issue_token, job),
                ),
                lease_until=lease_until,
            )
            self._running.add(run)
            if job.cancel_requested:
                self._running.begin_cancel(run)
            run.task = asyncio.create_task(self._run(run), name=f"jobstore-job-{job.job_id}")
            # Also when the task is cancelled before its first step, so its `finally` never ran.
            run.task.add_done_callback(functools.partial(self._forget_task, run))
            if job.timeout_seconds is not None:
                run.timer = asyncio.get_running_loop().call_later(
                    job.timeout_seconds, self._running.time_out, run
                )

    async def run_once(self) -> list[int]:
        """Claim what fits and run it to the end; returns the ids that ran. For tests."""
        claimed = await self.claim_once()
        runs = [self._running.get(c.job_id) for c in claimed]
        tasks = [r.task for r in runs if r is not None and r.task is not None]
        if tasks:
            await asyncio.gather(*tasks)
        return [c.job_id for c in claimed]

    async def wait_idle(self) -> None:
        """Wait until every job task this node started has ended."""
        while tasks := [r.task for r in self._running if r.task and not r.task.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, run: Run) -> None:
        job = run.claimed
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %d started: %s, attempt %d",
                job.job_id,
                job.endpoint,
                job.attempt,
                extra={"job_id": job.job_id, "endpoint": job.endpoint, "attempt": job.attempt},
            )
        try:
            try:
                outcome = await self._execute(run)
            except asyncio.CancelledError:
                if self._hard_stop or run.lost:
                    return  # hard stop requeues it; a lost job belongs to another node now
                outcome = stopped_outcome(run)
            if run.timed_out and outcome.status is JobState.CANCELLED:
                outcome = stopped_outcome(run)  # the handler stopped because time ran out
            if not run.lost:
                # From here nothing cancels this task (begin_cancel, drop and the hard stop
                # all leave a finishing run alone), and the write itself runs in the group
                # commit's own task: no shield (a task per job) is needed.
                run.finishing = True
                await self._finish(run, outcome)
        finally:
            self._forget(run)

    async def _issue_token(self, job: Claimed, hashed: str) -> bool:
        async with self.db.transaction() as conn:
            return await self.store.attempt_token_set(
                conn, job_id=job.job_id, attempt=job.attempt, token_hash=hashed
            )

    def settled(self, job_id: int, attempt: int) -> None:
        """The job's attempt was completed through the API on this node (a callback): the run
        waiting for it ends, recording nothing more."""
        run = self._running.get(job_id)
        if run is not None and run.claimed.attempt == attempt and not run.finishing:
            self._running.drop(run, "completed through the API", settled=True)

    def _forget_task(self, run: Run, task: asyncio.Task[None]) -> None:
        if task.cancelled() and not (run.lost or run.finishing or self._hard_stop):
            # Cancelled before its first step: `_run` never ran, so record the cancel here.
            run.finishing = True
            name = f"jobstore-cancel-{run.claimed.job_id}"
            finish = self._side.spawn(name, self._finish(run, stopped_outcome(run)))
            finish.add_done_callback(lambda _f: self._forget(run))
            return
        self._forget(run)

    def _forget(self, run: Run) -> None:
        self._running.forget(run)
        job = run.claimed
        if job.concurrency_key is not None or self.registry.has_global_limit(job.endpoint):
            self._limited_may_have_work = True  # a slot of its key or endpoint is free
            self._wake.set()
        elif self._queue_may_have_more:
            self._wake.set()  # a slot is free and the queue may hold more

    async def _execute(self, run: Run) -> Outcome:
        job, ctx = run.claimed, run.ctx
        try:
            ep = self.registry.get(job.endpoint)
            if ep.takes_payload:
                request: Any = job.request
            else:
                # Checked at create under the node's own --max-nesting: here only the ceiling.
                request = decode_request(
                    job.request, ep.request_schema, raw=ep.raw, max_nesting=MAX_NESTING_CEILING
                )
            if ep.is_async:
                value = await ep.handler(request, ctx)
            else:
                loop = asyncio.get_running_loop()
                value = await loop.run_in_executor(self._threads, ep.handler, request, ctx)
            if ctx.cancelled:
                return cancelled_outcome(ctx)
            if isinstance(value, Payload):
                response = value  # stored as it is (an upstream's answer, say)
            else:
                family = job.request.encoding.response_encoding
                response = encode_response(value, family, ep.response_schema, raw=ep.raw)
            return Outcome(JobState.DONE, response, ctx.status_map)
        except JobCancelled:
            return cancelled_outcome(ctx)
        except (JobFailed, JobstoreError) as exc:
            if isinstance(exc, JobFailed):
                run.no_retry, run.retry_after = not exc.retry, exc.retry_after
            message = storable_text(str(exc))
            return Outcome(JobState.ERROR, status_map={**ctx.status_map, "error_message": message})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # BaseException too: a handler calling sys.exit() must end its job, not the node.
            log.exception("job %d (%s) raised", job.job_id, job.endpoint)
            message = storable_text(f"{type(exc).__name__}: {exc}".rstrip(": "))
            return Outcome(JobState.ERROR, status_map={**ctx.status_map, "error_message": message})

    async def _write_finish(
        self, conn: Any, items: list[tuple[Claimed, Outcome]]
    ) -> list[JobState | None]:
        outcomes = [(job.job_id, job.attempt, outcome) for job, outcome in items]
        states = await self.store.job_end_attempts(conn, outcomes, self.clock.now())
        if JobState.QUEUED in states:  # a retry due at once: other nodes may take it now
            await self.store.job_notify_created(conn)
        return states

    async def _finish(self, run: Run, outcome: Outcome) -> None:
        job = run.claimed
        outcome = with_retry(
            job,
            outcome,
            clock=self.clock,
            cap=self.config.max_backoff_seconds,
            retry=not run.no_retry,
            after=run.retry_after,
        )
        # While the database is away (a restart, a failover) and the lease may still hold, no
        # other node can have taken the job: keep trying. The lease keeper renews the lease as
        # soon as the database is back, which extends the time we keep trying. Any other error
        # (a statement the database refuses) is tried a few times only: it will not heal, and
        # the job must not hold its slot, and a stop, for ever.
        delay = FINISH_FIRST_RETRY_SECONDS
        refused = 0
        while True:
            try:
                state = await self._finishes.submit((job, outcome))
                if state is not None:
                    self._finished(run, outcome, state)
                else:
                    log.warning(
                        "job %d attempt %d no longer holds the job; result discarded",
                        job.job_id,
                        job.attempt,
                    )
                return
            except Exception as exc:
                refused += not isinstance(exc, StoreUnavailable)
                left = (run.lease_until - self.clock.now()).total_seconds()
                if left <= 0 or refused >= FINISH_REFUSED_TRIES:
                    log.error(
                        "could not record job %d (%s); another node will rescue it once its "
                        "lease runs out",
                        job.job_id,
                        exc,
                    )
                    return
                wait = min(delay, left)
                log.warning("recording job %d failed (%s); retry in %.1fs", job.job_id, exc, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, FINISH_MAX_RETRY_SECONDS)

    def _finished(self, run: Run, outcome: Outcome, state: JobState) -> None:
        seconds = time.monotonic() - run.started
        job = run.claimed
        if self.metrics is not None:
            self.metrics.attempt_ended(job.endpoint, outcome.attempt_outcome, state)
        if state not in FINAL_STATES:  # failed, and will run again
            if state is JobState.QUEUED:
                self.wake()  # no backoff: it is in the queue already
            elif outcome.retry_at is not None:
                self.scheduler.note(outcome.retry_at)
            log.warning(
                "job %d attempt %d failed (%s); next attempt at %s",
                job.job_id,
                job.attempt,
                outcome.error_message,
                outcome.retry_at.isoformat() if outcome.retry_at else "once due",
                extra={"job_id": job.job_id, "endpoint": job.endpoint, "attempt": job.attempt},
            )
            return
        if self.metrics is not None:
            self.metrics.job_finished(run.claimed.endpoint, state, seconds)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %d %s in %.3f s: %s, attempt %d",
                job.job_id,
                state.value,
                seconds,
                job.endpoint,
                job.attempt,
                extra={
                    "job_id": job.job_id,
                    "endpoint": job.endpoint,
                    "attempt": job.attempt,
                    "outcome": state.value,
                    "duration_s": round(seconds, 6),
                },
            )
        self.events.finished(run.claimed.job_id, state)

    # -- cancel -----------------------------------------------------------------------------

    async def _hard_stop_jobs(self) -> None:
        self._hard_stop = True
        # A run already writing its outcome keeps its result: let it finish, requeue the rest.
        finishing = [r for r in self._running if r.finishing]
        runs = [r for r in self._running if not r.finishing]
        for run in runs:
            run.ctx.cancel(requested=False)
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in runs + finishing if r.task), return_exceptions=True)
        now = self.clock.now()
        async with self.db.transaction() as conn:
            for run in runs:
                await self.store.job_requeue(
                    conn,
                    job_id=run.claimed.job_id,
                    attempt=run.claimed.attempt,
                    now=now,
                    reason=f"node {self.config.node_id!r} stopped while running this job",
                )
        log.warning("stopped with %d jobs still running; gave them back", len(runs))
        self._running.clear()

    # -- background services ----------------------------------------------------------------

    async def heartbeat_once(self) -> list[int]:
        """One run of the lease keeper: the ids of jobs found lost."""
        return await self.lease_keeper.run_once()

    async def tick_once(self) -> TickResult:
        """One run of the progress sync."""
        return await self.progress.run_once()

    async def rescue_once(self) -> RescueResult:
        """One run of the rescuer."""
        return await self.rescuer.run_once()

    async def _claim_loop(self) -> None:
        woken = False
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.claim_once(woken=woken)
            except Exception as exc:
                log.warning("claim failed: %s", exc)
                claimed = []
                await asyncio.sleep(self.config.poll_seconds)
            free = self.config.concurrency - len(self._running)
            woken = True
            if claimed and self._queue_may_have_more and free > 0:
                continue  # the claim was full: the queue may hold more
            poll = self.db.idle_poll_seconds(self.config.poll_seconds)
            woken = await wait_set(self._wake, poll)

    def _every(
        self, name: str, seconds: float, once: Callable[[], Awaitable[Any]]
    ) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            failing_since: datetime | None = None
            while not self._stopping:
                try:
                    await once()
                    failing_since = None
                except Exception as exc:
                    failing_since = failing_since or self.clock.now()
                    log.warning("%s failed: %s", name, exc)
                    self._lose_all_if_stale(failing_since)
                await asyncio.sleep(seconds)

        return loop

    def _lose_all_if_stale(self, failing_since: datetime) -> None:
        """Past a lease of failures, other nodes may own our jobs: stop running them."""
        if self.clock.now() - failing_since < timedelta(seconds=self.config.lease_seconds):
            return
        for run in self._running:
            if not run.lost:
                self._running.drop(run, "the database was out of reach for longer than the lease")

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a loop; if it dies, stop the executor loudly rather than limp on."""
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.critical("executor %s loop died: %r; stopping the executor", name, exc)
            self.failure = exc
            if not self._stopping:  # a stop under way waits for side tasks: never add one
                self._side.spawn("jobstore-stop", self.stop(wait_seconds=0))
