"""The core every facade calls: create, get, list, cancel and prune jobs.

Facades translate their wire format to these calls and back; they never touch SQL. Every
method runs its own transaction, and `create_job` returns only after its row is committed;
`create_in` writes a job inside a transaction the caller owns (CDM: job and submission).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from jobstore.codecs import decode_request
from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.errors import (
    BadOption,
    BadRequest,
    JobNotFound,
    JobNotRetryable,
    JobRemoved,
    TagConflict,
)
from jobstore.domain.events import JobEvents
from jobstore.domain.inputs import DEFAULT_INPUT_LIMITS, InputLimits, check_count
from jobstore.domain.loops import wait_set
from jobstore.domain.models import (
    ACTIVE_STATES,
    DEFAULT_MAX_ATTEMPTS,
    FINAL_STATES,
    RETRYABLE_STATES,
    Attempt,
    Encoding,
    Inserted,
    Job,
    JobQuery,
    JobState,
    NewJob,
    Payload,
    PruneResult,
    is_valid_tag,
)
from jobstore.domain.options import OPTION_NAMES, parse_run_options
from jobstore.endpoints.registry import EndpointRegistry
from jobstore.metrics import Metrics
from jobstore.store import Database
from jobstore.store.batch import GroupCommit
from jobstore.store.jobs import job_as_written
from jobstore.store.migrate import current_revision, head_revision

# Ids per statement when cancelling many jobs (PostgreSQL takes at most 32767 parameters).
CANCEL_BATCH = 1000
# A bulk retry or cancel works through the matching jobs this many per transaction, and stops
# after BULK_MAX_JOBS (the answer says when more match: call again).
BULK_BATCH = 500
BULK_MAX_JOBS = 10_000
# Dashboards show per-state counts up to this many, then "10000+": bounded work per view.
COUNT_CAP = 10_000
COUNT_CACHE_SECONDS = 1.0
# A long poll re-reads the job this often, for jobs that end on another node.
WAIT_POLL_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk retry or cancel did: per outcome, how many jobs; `more` when it stopped at
    BULK_MAX_JOBS with jobs still matching."""

    matched: int
    outcomes: dict[str, int]
    more: bool = False


@dataclass(frozen=True, slots=True)
class CreateResult:
    job_id: int
    job_tag: str
    created: bool  # False when an identical create with the same tag was answered before
    written: NewJob | None = None  # the new job, when created
    created_at: datetime | None = None

    def job(self) -> Job | None:
        """The new job's row as its create wrote it (None for a repeated create): a create is
        answered from its own transaction, never from a second read that might fail."""
        if self.written is None or self.created_at is None:
            return None
        return job_as_written(self.written, self.job_id, self.created_at)


_UNPARSED: Any = object()


def request_digest(endpoint: str, payload: Payload, parsed: Any = _UNPARSED) -> str:
    """What makes two creates "the same job": endpoint, encoding and payload.

    A JSON payload counts by its meaning, not its spelling: it is digested in a canonical form
    (keys sorted, no spaces), so `{"seconds":5}` and `{"seconds": 5}` are the same job. Pass
    the payload's value as `parsed` when it is at hand, so the text is not parsed again.
    """
    text = payload.text
    if text is not None and payload.encoding is Encoding.JSON:
        text = canonical_json(text) if parsed is _UNPARSED else _canonical(parsed)
    return _digest(endpoint, payload, text)


def legacy_request_digest(endpoint: str, payload: Payload) -> str:
    """The digest of the exact payload text, as jobs created before canonical JSON hold it."""
    return _digest(endpoint, payload, payload.text)


def _digest(endpoint: str, payload: Payload, text: str | None) -> str:
    h = hashlib.sha256()
    h.update(endpoint.encode())
    h.update(b"\0")
    h.update(payload.encoding.value.encode())
    h.update(b"\0")
    if payload.data is not None:
        h.update(payload.data)
    if text is not None:
        h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def canonical_json(text: str) -> str:
    """JSON text in one spelling: keys sorted, no spaces, non-ASCII as is; else `text`."""
    try:
        return _canonical(json.loads(text))
    except (ValueError, RecursionError):  # not JSON: prepare_job refuses it anyway
        return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _what_differs(new: NewJob, holder: Inserted) -> str | None:
    """What a create differs in from the job holding its tag, when the row tells.

    Endpoint and encoding are compared; the payload is named only when both are the same.
    A removed job's encoding is not kept, so for it the payload and encoding stay together.
    """
    if holder.existing_endpoint is None:
        return None
    encoding = new.request.encoding.value
    differs = []
    if holder.existing_endpoint != new.endpoint:
        differs.append(f"endpoint ({holder.existing_endpoint}, not {new.endpoint})")
    if holder.existing_encoding is not None and holder.existing_encoding != encoding:
        differs.append(f"request_encoding ({holder.existing_encoding}, not {encoding})")
    if differs:
        return " and ".join(differs)
    return "payload" if holder.existing_encoding is not None else "request_encoding or payload"


class Retention(Protocol):
    """The retention pass (the executor's Pruner): what it keeps, and one run of it."""

    @property
    def retention(self) -> Mapping[JobState, timedelta]: ...

    async def run_once(
        self, retention: Mapping[JobState, timedelta] | None = None
    ) -> PruneResult: ...


def parse_bool(value: str | bool, *, name: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise BadRequest(f"option {name!r} must be true or false, got {value!r}")


class JobService:
    def __init__(
        self,
        db: Database,
        registry: EndpointRegistry,
        *,
        clock: Clock | None = None,
        default_max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        limits: InputLimits = DEFAULT_INPUT_LIMITS,
        events: JobEvents | None = None,
        metrics: Metrics | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.db = db
        self.store = db.jobs
        self.registry = registry
        self.clock = clock or SystemClock()
        self.default_max_attempts = default_max_attempts
        self.limits = limits  # what one request may hold: every facade reads them here
        self.events = events or JobEvents()
        self.metrics = metrics
        self._retention = retention
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._counts: dict[str | None, tuple[float, dict[JobState, int]]] = {}
        self._creates: GroupCommit[NewJob, Inserted] = GroupCommit(db, self.create_many_in)

    async def create_many_in(self, conn: Any, news: list[NewJob]) -> list[Inserted]:
        """Write prepared jobs inside the caller's transaction, and notify other nodes when it
        commits. After the commit the caller calls `announce_created` for each new one."""
        inserted = await self.store.job_create_many(conn, news, self.clock.now())
        created = [new for new, ins in zip(news, inserted, strict=True) if ins.created]
        if created:
            limited = any(self.is_limited(new) for new in created)
            await self.store.job_notify_created(conn, limited=limited)
        return inserted

    async def create_in(self, conn: Any, new: NewJob) -> Inserted:
        """`create_many_in` of one job."""
        [inserted] = await self.create_many_in(conn, [new])
        return inserted

    def is_limited(self, new: NewJob) -> bool:
        """Whether a job waits for the limited claim: it has a concurrency key, or its
        endpoint a global limit (store/limits.py)."""
        return new.concurrency_key is not None or self.registry.has_global_limit(new.endpoint)

    def prepare_job(
        self,
        endpoint: str,
        payload: Payload,
        options: Mapping[str, Any] | None = None,
        *,
        created_by: str | None = None,
        project: str | None = None,
        source_ip: str | None = None,
    ) -> NewJob:
        """Validate a create and build the row to insert; raises the client's mistakes."""
        options = dict(options or {})
        ep = self.registry.get(endpoint)
        # Refuse undecodable payloads now, not when the job runs. A raw endpoint's JSON is
        # parsed too (its schema is not used): the value serves the digest below.
        value = decode_request(
            payload,
            None if ep.raw else ep.request_schema,
            max_nesting=self.limits.max_nesting,
        )
        tag = options.get("job_tag") or ""
        given_tag = bool(tag)
        if given_tag and not is_valid_tag(tag):
            raise BadRequest(f"invalid job_tag {tag!r}: use 1 to 128 letters, digits, '_' or '-'")
        if not given_tag:
            tag = uuid.uuid4().hex
            options["job_tag"] = tag
        remove = parse_bool(
            options.get("remove_job_on_complete", "false"), name="remove_job_on_complete"
        )
        run = parse_run_options(options).or_defaults(ep.defaults)
        if run.concurrency_key is not None and endpoint not in self.registry:
            raise BadOption(
                "concurrency_key", f"is not available for {endpoint}, run on the Kinetica upstream"
            )
        if run.retry_errors and not ep.retryable:
            raise BadOption(
                "retry_errors", f"cannot be true: {endpoint} is not retryable (it never runs twice)"
            )
        for name in OPTION_NAMES:  # stored as Kinetica's options are: text
            if (given := options.get(name)) is not None and not isinstance(given, str):
                options[name] = json.dumps(given)
        return NewJob(
            job_tag=tag,
            endpoint=endpoint,
            request=payload,
            request_digest=request_digest(endpoint, payload, value),
            options=options,
            remove_on_complete=remove,
            retryable=ep.retryable,
            max_attempts=run.max_attempts or ep.max_attempts or self.default_max_attempts,
            created_by=created_by,
            project=project,
            source_ip=source_ip,
            tag_given=given_tag,
            priority=run.priority or 0,
            run_at=run.run_at,
            delay_seconds=run.delay_seconds,
            retry_errors=bool(run.retry_errors),
            backoff_seconds=run.backoff_seconds,
            timeout_seconds=run.timeout_seconds,
            concurrency_key=run.concurrency_key,
            upstream=None if endpoint in self.registry else ep.kind,
        )

    async def create_job(
        self,
        endpoint: str,
        payload: Payload,
        options: Mapping[str, Any] | None = None,
        *,
        created_by: str | None = None,
        project: str | None = None,
        source_ip: str | None = None,
    ) -> CreateResult:
        """Validate and store a new queued job; idempotent on `options.job_tag`."""
        new = self.prepare_job(
            endpoint,
            payload,
            options,
            created_by=created_by,
            project=project,
            source_ip=source_ip,
        )
        # Answered after the commit of a transaction shared with concurrent creates.
        inserted = await self._creates.submit(new)
        if not inserted.created:
            if inserted.existing_owner != new.created_by:
                raise TagConflict(new.job_tag, None)  # someone else's job: say nothing of it
            if inserted.existing_digest != new.request_digest and (
                # A job created before canonical JSON holds the digest of its exact text.
                inserted.existing_digest != legacy_request_digest(new.endpoint, new.request)
            ):
                raise TagConflict(new.job_tag, inserted.job_id, _what_differs(new, inserted))
            return CreateResult(inserted.job_id, new.job_tag, created=False)
        self.announce_created(new)
        return CreateResult(
            inserted.job_id, new.job_tag, created=True, written=new, created_at=inserted.created_at
        )

    def announce_created(self, new: NewJob) -> None:
        """A create committed: count it and tell this node's executor that work is waiting
        (now, or at the job's run_at)."""
        if self.metrics is not None:
            self.metrics.job_created(new.endpoint)
        run_at = new.run_at
        if new.delay_seconds is not None:
            run_at = self.clock.now() + timedelta(seconds=new.delay_seconds)
        if run_at is not None and run_at > self.clock.now():
            self.events.scheduled(run_at)
        else:
            self.events.created(new.endpoint, limited=self.is_limited(new))

    def wake_waiters(self, job_id: int, state: JobState) -> None:
        """An executor on this node committed a job's outcome: wake whoever waits on it."""
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def wait_for_job(
        self,
        *,
        job_id: int | None = None,
        tag: str | None = None,
        wait_seconds: float,
        visible_to: str | None = None,
    ) -> Job:
        """The job once it is finished, or as it is when `wait_seconds` have passed.

        Woken at once when this node's executor ends the job; jobs that end on another node
        are seen by re-reading every WAIT_POLL_SECONDS.
        """
        job = await self.get_job(job_id=job_id, tag=tag, visible_to=visible_to)
        deadline = time.monotonic() + wait_seconds
        event = asyncio.Event()
        self._waiters.setdefault(job.job_id, set()).add(event)
        try:
            while job.status not in FINAL_STATES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await wait_set(event, min(left, WAIT_POLL_SECONDS))
                event.clear()
                job = await self.get_job(job_id=job.job_id, visible_to=visible_to)
        finally:
            waiters = self._waiters[job.job_id]
            waiters.discard(event)
            if not waiters:
                del self._waiters[job.job_id]
        return job

    async def get_job(
        self,
        *,
        job_id: int | None = None,
        tag: str | None = None,
        visible_to: str | None = None,
        with_request: bool = True,
    ) -> Job:
        """A job by tag (preferred) or id; JobRemoved for a job deleted on completion.

        With `visible_to`, another user's job is reported as not found. Without
        `with_request` its request payload is left unread (`Job.request_data` and
        `request_text` are None): what a status read does not show.
        """
        if tag is None and job_id is None:
            raise BadRequest("give a job_id or a job_tag")
        if tag is not None and not is_valid_tag(tag):
            raise JobNotFound(tag=tag)  # no job can hold such a tag
        async with self.db.reading() as conn:
            if tag is not None:
                job = await self.store.job_get_by_tag(conn, tag, with_request=with_request)
                stone = None if job else await self.store.tombstone_get_by_tag(conn, tag)
            else:
                assert job_id is not None
                job = await self.store.job_get(conn, job_id, with_request=with_request)
                stone = None if job else await self.store.tombstone_get(conn, job_id)
        owner = job.created_by if job is not None else stone.created_by if stone else None
        if visible_to is not None and owner != visible_to:
            raise JobNotFound(job_id=job_id, tag=tag)
        if job is not None:
            return job
        if stone is not None:
            raise JobRemoved(stone.job_id, stone.job_tag, stone.status.value, stone.finished_at)
        raise JobNotFound(job_id=job_id, tag=tag)

    async def list_jobs(
        self,
        *,
        states: Iterable[JobState] | None = ACTIVE_STATES,
        limit: int = 1000,
        created_by: str | None = None,
    ) -> list[Job]:
        """Jobs without payloads, newest first."""
        async with self.db.reading() as conn:
            return await self.store.job_list(
                conn, states=states, limit=limit, created_by=created_by
            )

    async def search_jobs(self, query: JobQuery, *, limit: int) -> list[Job]:
        """Jobs matching `query` without payloads, newest first; page with `before_id`."""
        async with self.db.reading() as conn:
            return await self.store.job_search(conn, query, limit=limit)

    async def status_counts(self, *, created_by: str | None = None) -> dict[JobState, int]:
        """Jobs per state, each capped at COUNT_CAP + 1 and cached for a second."""
        now = self.clock.monotonic()
        cached = self._counts.get(created_by)
        if cached is not None and now - cached[0] < COUNT_CACHE_SECONDS:
            return cached[1]
        async with self.db.reading() as conn:
            counts = await self.store.job_status_counts(conn, cap=COUNT_CAP, created_by=created_by)
        if len(self._counts) > 1000:  # one entry per user: bound it all the same
            self._counts.clear()
        self._counts[created_by] = (now, counts)
        return counts

    async def active_counts(self) -> dict[JobState, int]:
        """Exact queued and running totals (for metrics)."""
        async with self.db.reading() as conn:
            return await self.store.job_active_counts(conn)

    async def ready(self) -> bool:
        """True when the database answers: this node can serve."""
        return await self.db.ping()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether this node can serve: database reachable and writable (not a standby, not
        read-only), schema at the newest revision."""
        head = head_revision()
        try:
            current = await current_revision(self.db)
            read_only = await self.db.read_only_reason()
        except Exception as exc:
            return False, {"database": f"unreachable: {type(exc).__name__}", "schema": "unknown"}
        at_head = current == head
        schema = "at head" if at_head else f"at {current or 'nothing'}, head is {head}"
        checks = {
            "database": "reachable",
            "writable": read_only or "yes",
            "schema": schema,
            "revision": current or "",
        }
        return at_head and read_only is None, checks

    async def cancel_jobs(
        self, job_ids: Sequence[int], *, created_by: str | None = None
    ) -> dict[int, str]:
        """Cancel queued jobs at once and ask running ones to stop; status per id.

        With `created_by`, only that user's jobs are touched.
        """
        check_count(len(job_ids), what="the list of job ids", limits=self.limits)
        unique = list(dict.fromkeys(job_ids))
        result: dict[int, str] = {}
        async with self.db.transaction() as conn:
            for start in range(0, len(unique), CANCEL_BATCH):
                batch = unique[start : start + CANCEL_BATCH]
                result.update(
                    await self.store.job_cancel(
                        conn, batch, self.clock.now(), created_by=created_by
                    )
                )
        requested = [i for i, s in result.items() if s == "cancel_requested"]
        if requested:
            self.events.cancel_requested(requested)
        return result

    async def retry_job(self, job_id: int, *, visible_to: str | None = None) -> Job:
        """Run a finished `error` or `cancelled` job again, as a new attempt.

        JobNotRetryable for a job in any other state, JobRemoved for a removed one.
        """
        async with self.db.transaction() as conn:
            moved = await self.store.job_retry(
                conn, [job_id], self.clock.now(), created_by=visible_to
            )
            if moved:
                await self.store.job_notify_created(conn)
        job = await self.get_job(job_id=job_id, visible_to=visible_to)
        if not moved:
            raise JobNotRetryable(job_id, job.status.value)
        self.events.created(job.endpoint)  # work waits again: wake this node's executor
        return job

    async def bulk_action(
        self, action: str, query: JobQuery, *, max_jobs: int = BULK_MAX_JOBS
    ) -> BulkResult:
        """Retry (`action="retry"`) or cancel (`"cancel"`) every job `query` selects.

        Works newest first, BULK_BATCH jobs per transaction, up to `max_jobs`. Retry touches
        only finished error/cancelled jobs, cancel only unfinished ones, whatever `query` says.
        """
        allowed = RETRYABLE_STATES if action == "retry" else frozenset(ACTIVE_STATES)
        if action not in ("retry", "cancel"):
            raise BadRequest(f"unknown bulk action {action!r}: use retry or cancel")
        states = allowed if query.states is None else allowed & set(query.states)
        query = replace(query, states=tuple(sorted(states)))
        outcomes: dict[str, int] = {}
        matched = 0
        more = False
        while states:
            async with self.db.transaction() as conn:
                limit = min(BULK_BATCH, max_jobs - matched)
                ids = await self.store.job_ids_matching(conn, query, limit=limit + 1)
                more = len(ids) > limit
                ids = ids[:limit]
                if not ids:
                    break
                now = self.clock.now()
                if action == "retry":
                    moved = await self.store.job_retry(conn, ids, now, created_by=query.created_by)
                    outcomes["retried"] = outcomes.get("retried", 0) + len(moved)
                    if moved:
                        await self.store.job_notify_created(conn)
                else:
                    done = await self.store.job_cancel(conn, ids, now, created_by=query.created_by)
                    for outcome in done.values():
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
            matched += len(ids)
            query = replace(query, before_id=min(ids))
            if action == "cancel":
                self.events.cancel_requested(
                    [i for i, o in done.items() if o == "cancel_requested"]
                )
            else:
                for endpoint in set(moved.values()):
                    self.events.created(endpoint)
            if not more or matched >= max_jobs:
                break
        return BulkResult(matched=matched, outcomes=outcomes, more=more)

    async def attempts(self, job_id: int, *, visible_to: str | None = None) -> list[Attempt]:
        """Every run of a job, first to last (`job_attempts`)."""
        await self.get_job(job_id=job_id, visible_to=visible_to)  # not found, not yours, removed
        async with self.db.reading() as conn:
            return await self.store.job_attempts(conn, job_id)

    @property
    def can_prune(self) -> bool:
        """False on a node built without a retention pass."""
        return self._retention is not None

    @property
    def retention(self) -> Mapping[JobState, timedelta]:
        """How long each final state is kept on this node (states kept forever left out)."""
        return self._retention.retention if self._retention is not None else {}

    async def prune(self, retention: Mapping[JobState, timedelta] | None = None) -> PruneResult:
        """Delete finished jobs past their retention now (this node's, or `retention`)."""
        if self._retention is None:
            raise RuntimeError("this node has no retention pass; check can_prune first")
        return await self._retention.run_once(retention)
