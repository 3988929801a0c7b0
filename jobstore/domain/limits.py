"""Concurrency limits: which queued jobs a claim may start without going over a limit.

A job may carry a concurrency key (e.g. a customer id). At most `limit` jobs with one key run
at once, across all nodes; the key's limit is its named limit (the `concurrency_limits`
table) or else its endpoint's `concurrency_limit`; without either, the key is unlimited but
still served fairly. An endpoint's `global_limit` caps all its running jobs, keyed or not.

Keys are served fairly: a claim takes the first job of every key before the second of any,
so ten jobs of key B are not stuck behind a thousand of key A. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """The limits an endpoint declares (`@endpoint(concurrency_limit=..., global_limit=...)`)."""

    concurrency_limit: int | None = None  # per key, for keys without a named limit
    global_limit: int | None = None  # all running jobs of the endpoint, keyed or not

    @property
    def any(self) -> bool:
        return self.concurrency_limit is not None or self.global_limit is not None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queued job a limited claim may start; `rank` is its place in its key's line (0 =
    the next one of that key)."""

    job_id: int
    endpoint: str
    key: str | None
    priority: int
    rank: int


@dataclass(frozen=True, slots=True)
class Running:
    """Running jobs, counted per key and per endpoint (all nodes)."""

    by_key: Mapping[str, int] = field(default_factory=dict)
    by_endpoint: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[tuple[str | None, str, int]]) -> Running:
        """From (concurrency_key, endpoint, count) rows."""
        by_key: Counter[str] = Counter()
        by_endpoint: Counter[str] = Counter()
        for key, endpoint, count in rows:
            if key is not None:
                by_key[key] += count
            by_endpoint[endpoint] += count
        return cls(dict(by_key), dict(by_endpoint))


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit a claim obeys: named ones by key, and the endpoints' own."""

    named: Mapping[str, int]
    endpoints: Mapping[str, EndpointLimits]

    def of_key(self, key: str, endpoint: str) -> int | None:
        if key in self.named:
            return self.named[key]
        return self.endpoints.get(endpoint, EndpointLimits()).concurrency_limit

    def of_endpoint(self, endpoint: str) -> int | None:
        return self.endpoints.get(endpoint, EndpointLimits()).global_limit

    def free_for_key(self, key: str, running: Running) -> int | None:
        """Slots left for a key with a named limit (None: it depends on the endpoint)."""
        if key not in self.named:
            return None
        return max(0, self.named[key] - running.by_key.get(key, 0))


@dataclass(frozen=True, slots=True)
class Picked:
    job_ids: list[int]
    held_back: int  # candidates passed over because their key or endpoint was full


def pick(candidates: Iterable[Candidate], *, free: int, running: Running, limits: Limits) -> Picked:
    """Up to `free` candidates, round robin over keys (each key's first job, then each key's
    second, ...; by priority, then age, within a round), none over its key's or endpoint's
    limit."""
    by_key = Counter(running.by_key)
    by_endpoint = Counter(running.by_endpoint)
    chosen: list[int] = []
    held_back = 0
    for c in sorted(candidates, key=lambda c: (c.rank, -c.priority, c.job_id)):
        if len(chosen) >= free:
            break
        key_limit = limits.of_key(c.key, c.endpoint) if c.key is not None else None
        endpoint_limit = limits.of_endpoint(c.endpoint)
        if (key_limit is not None and c.key is not None and by_key[c.key] >= key_limit) or (
            endpoint_limit is not None and by_endpoint[c.endpoint] >= endpoint_limit
        ):
            held_back += 1
            continue
        chosen.append(c.job_id)
        if c.key is not None:
            by_key[c.key] += 1
        by_endpoint[c.endpoint] += 1
    return Picked(chosen, held_back)
