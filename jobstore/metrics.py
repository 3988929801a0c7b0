"""Prometheus metrics of one node, in a registry of its own (so tests can run many nodes).

Counters and histograms are updated where things happen (the service, the executor, the HTTP
middleware). Queue depth and running jobs are read from the database when scraped: they
describe the whole cluster, not this node.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from jobstore.domain.models import FINAL_STATES, AttemptOutcome, JobState

__all__ = ["CONTENT_TYPE", "Metrics"]

# Distinct endpoint labels, at most; later names count as OTHER_ENDPOINTS. Clients name the
# endpoints a Kinetica upstream runs, and every new name would be new series for ever.
MAX_ENDPOINT_LABELS = 1000
OTHER_ENDPOINTS = "(other)"

# Set by cli/processes.py for a node of several processes: prometheus_client then counts in
# files there (read when it is imported), and render() sums every process's.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; from a claim on an idle queue to long-running jobs.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_JOBS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        # Labelled children by (metric, labels). prometheus_client's labels() validates and
        # locks on every call, a few microseconds each; a job updates four of them.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._endpoints: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_created = Counter(
            "jobstore_jobs_created", "Jobs created through this node", ["endpoint"], registry=r
        )
        self.jobs_finished = Counter(
            "jobstore_jobs_finished",
            "Jobs this node ran to a final state",
            ["endpoint", "status"],
            registry=r,
        )
        self.job_duration = Histogram(
            "jobstore_job_duration_seconds",
            "Time from a job's start on this node to its outcome",
            ["endpoint", "status"],
            buckets=_JOBS,
            registry=r,
        )
        self.claim_duration = Histogram(
            "jobstore_claim_duration_seconds",
            "Time of one claim transaction",
            buckets=_FAST,
            registry=r,
        )
        self.attempts = Counter(
            "jobstore_job_attempts",
            "Runs of jobs that ended, by how (done, error, timeout, cancelled, given_back; "
            "lost: closed by this node's rescuer after another node died)",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "jobstore_job_retries",
            "Failed or timed-out runs this node scheduled to run again (retry_errors)",
            ["endpoint"],
            registry=r,
        )
        self.claimed = Counter("jobstore_jobs_claimed", "Jobs claimed by this node", registry=r)
        self.held_back = Counter(
            "jobstore_jobs_held_back",
            "Queued jobs (or keys at their limit) a claim on this node passed over because a "
            "concurrency limit was reached",
            registry=r,
        )
        self.schedule_fires = Counter(
            "jobstore_schedule_fires",
            "Jobs created by recurring schedules on this node (one per fire time)",
            ["schedule"],
            registry=r,
        )
        self.schedule_misfires = Counter(
            "jobstore_schedule_misfires",
            "Missed fire times a schedule's misfire policy let go, seen on this node",
            ["schedule"],
            registry=r,
        )
        # Read from the database when scraped, so the same in every process of a node.
        self._database_gauges = _DatabaseGauges()
        r.register(self._database_gauges)
        self.http_duration = Histogram(
            "jobstore_http_request_duration_seconds",
            "HTTP requests handled by this node",
            ["method", "route", "status"],
            buckets=_FAST,
            registry=r,
        )

        self.upstream_calls = Counter(
            "jobstore_upstream_calls",
            "Calls this node made to upstream services (HTTP endpoints, a Kinetica upstream), by "
            "answer: 2xx..5xx, timeout, unreachable, too_large, cancelled",
            ["endpoint", "status_class"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "jobstore_upstream_call_duration_seconds",
            "Time of one call to an upstream service, to the end of its answer",
            ["endpoint"],
            buckets=_JOBS,
            registry=r,
        )

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _endpoint(self, name: str) -> str:
        """The label of endpoint `name`: itself, or OTHER_ENDPOINTS past the cap."""
        if name in self._endpoints:
            return name
        if len(self._endpoints) >= MAX_ENDPOINT_LABELS:
            return OTHER_ENDPOINTS
        self._endpoints.add(name)
        return name

    def job_created(self, endpoint: str) -> None:
        self._child(self.jobs_created, self._endpoint(endpoint)).inc()

    def job_finished(self, endpoint: str, status: JobState, seconds: float) -> None:
        endpoint = self._endpoint(endpoint)
        self._child(self.jobs_finished, endpoint, status.value).inc()
        self._child(self.job_duration, endpoint, status.value).observe(seconds)

    def attempt_ended(self, endpoint: str, outcome: AttemptOutcome, state: JobState) -> None:
        """A run on this node ended with `outcome`, leaving its job in `state`."""
        endpoint = self._endpoint(endpoint)
        self._child(self.attempts, endpoint, outcome.value).inc()
        if state not in FINAL_STATES:
            self._child(self.retries, endpoint).inc()

    def attempts_lost(self, endpoint: str, count: int) -> None:
        self._child(self.attempts, self._endpoint(endpoint), AttemptOutcome.LOST.value).inc(count)

    def claim_observed(self, seconds: float, claimed: int) -> None:
        self.claim_duration.observe(seconds)
        if claimed:
            self.claimed.inc(claimed)

    def jobs_held_back(self, count: int) -> None:
        self.held_back.inc(count)

    def schedule_fired(self, schedule: str, fires: int, missed: int) -> None:
        if fires:
            self._child(self.schedule_fires, schedule).inc(fires)
        if missed:
            self._child(self.schedule_misfires, schedule).inc(missed)

    def http_observed(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_duration, method, route, str(status)).observe(seconds)

    def upstream_called(self, endpoint: str, status_class: str, seconds: float) -> None:
        endpoint = self._endpoint(endpoint)
        self._child(self.upstream_calls, endpoint, status_class).inc()
        self._child(self.upstream_duration, endpoint).observe(seconds)

    def render(self, active: Mapping[JobState, int]) -> bytes:
        """The text exposition format, with the database gauges set from `active`. In a node
        of several processes (cli/processes.py), the counts of all of them, summed."""
        self._database_gauges.active = active
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        registry.register(self._database_gauges)
        return generate_latest(registry)


class _DatabaseGauges(Collector):
    """Jobs queued, running and scheduled in the whole database (all nodes), as last read."""

    _GAUGES = (
        ("jobstore_queue_depth", "Queued jobs in the database (all nodes)", JobState.QUEUED),
        ("jobstore_running_jobs", "Running jobs in the database (all nodes)", JobState.RUNNING),
        (
            "jobstore_scheduled_jobs",
            "Jobs waiting for their run_at (delayed, or backing off before a retry; all nodes)",
            JobState.SCHEDULED,
        ),
    )

    def __init__(self) -> None:
        self.active: Mapping[JobState, int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, help_text, state in self._GAUGES:
            yield GaugeMetricFamily(name, help_text, value=self.active.get(state, 0))
