"""Creates from several threads against real nodes, and what the topology tests check after.

A `Creator` posts Kinetica `/create/job` requests for `/record` jobs (tests/support/e2e_endpoints)
round robin over the nodes, and keeps every answer: the ids acknowledged, and the errors by kind
(`HTTP 503`, a refused connection, ...), each with the time it came. The record file then tells
how often each job really started: once, or more than once (run twice).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.e2e import Server


@dataclass
class Answer:
    at: float  # time.monotonic() when it came
    job_id: int | None  # acknowledged, or None
    error: str | None = None


@dataclass
class Creator:
    servers: Sequence[Server]
    record: Path
    threads: int = 8
    seconds: float = 0.05  # how long each /record job runs
    pause: float = 0.0  # each thread's pause after a create: a steady rate, not a flood
    answers: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _left: int | None = None

    # -- running ------------------------------------------------------------------------------

    def run(self, count: int) -> Creator:
        """Send `count` creates and wait for every answer."""
        self._left = count
        self.start()
        for worker in self._workers:
            worker.join()
        return self

    def start(self) -> Creator:
        """Keep creating in the background until `stop()` (or until a `run` count is used)."""
        for n in range(self.threads):
            worker = threading.Thread(target=self._loop, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Creator:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return self

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def _loop(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = n
            while self._take():
                server = self.servers[i % len(self.servers)]
                i += 1
                answer = self._create(client, server)
                with self._lock:
                    self.answers.append(answer)
                # After an error (an outage) pause anyway: do not spin.
                time.sleep(self.pause if answer.error is None else max(self.pause, 0.05))

    def _create(self, client: httpx.Client, server: Server) -> Answer:
        body = {
            "endpoint": "/record",
            "request_encoding": "json",
            "data": "",
            "data_str": json.dumps({"path": str(self.record), "seconds": self.seconds}),
            "options": {},
        }
        try:
            response = client.post(f"{server.url}/create/job", json=body)
        except httpx.HTTPError as exc:
            return Answer(time.monotonic(), None, type(exc).__name__)
        now = time.monotonic()
        if response.status_code != 200:
            return Answer(now, None, f"HTTP {response.status_code}")
        envelope = response.json()
        if envelope.get("status") != "OK":
            return Answer(now, None, f"ERROR {envelope.get('message', '')[:80]}")
        return Answer(now, int(json.loads(envelope["data_str"])["job_id"]))

    # -- results ------------------------------------------------------------------------------

    @property
    def acknowledged(self) -> list[int]:
        return sorted(a.job_id for a in self.answers if a.job_id is not None)

    @property
    def errors(self) -> collections.Counter[str]:
        return collections.Counter(a.error for a in self.answers if a.error is not None)

    def first_success_after(self, moment: float) -> float | None:
        """When the first create after `moment` (time.monotonic()) was acknowledged."""
        times = [a.at for a in self.answers if a.job_id is not None and a.at > moment]
        return min(times) if times else None


def starts_per_job(record: Path) -> collections.Counter[int]:
    """How many times each /record job started, from its record file."""
    if not record.exists():
        return collections.Counter()
    lines = record.read_text(encoding="utf-8").splitlines()
    return collections.Counter(int(line.split()[1]) for line in lines if line.startswith("start"))
