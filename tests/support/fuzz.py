"""Fuzzing a group of REST routes with schemathesis against the OpenAPI document, in-process.

For the tests that fuzz routes with seeds of their own (test_limits_api.py,
test_schedules_api.py): one app on one event loop, each case sent through httpx, and every
operation of a schema tried with valid requests and, where it takes any input, invalid ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobstore.api.rest import RestConfig
from jobstore.cli.node import Node, node_for_tests
from jobstore.store import Database

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
BASE_URL = "http://t"
Send = Callable[[schemathesis.Case], httpx.Response]


@dataclass
class App:
    """A node's app with no background tasks, its client, and the loop both run on."""

    runner: asyncio.Runner
    node: Node
    client: httpx.AsyncClient

    def send(self, case: schemathesis.Case) -> httpx.Response:
        """Send a schemathesis case to the app as it would go on the wire."""
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs.get("headers", {}),
            params=kwargs.get("params"),
            data=kwargs.get("data"),
            json=kwargs.get("json"),
        ).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        assert prepared.method is not None and prepared.url is not None
        return self.runner.run(
            self.client.request(
                prepared.method, prepared.url, headers=dict(prepared.headers), content=body
            )
        )


@contextlib.contextmanager
def fuzzed_app(database_url: str, node_id: str) -> Iterator[App]:
    """A node on `database_url` and its app, stopped and disposed of on the way out."""
    with asyncio.Runner() as runner:
        db = Database(database_url, pool_size=4)
        node = node_for_tests(db, node_id=node_id)
        app = node.app(run_background=False, rest=RestConfig())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        try:
            yield App(runner, node, client)
        finally:
            runner.run(client.aclose())
            runner.run(node.executor.stop())
            runner.run(db.dispose())


def fuzz_operations(schema: Any, send: Send, seen: dict[str, set[int]]) -> None:
    """Fuzz every operation of `schema`; `seen` gathers the statuses of each (by its label)."""
    for result in schema.get_all_operations():
        operation = result.ok()
        statuses = seen.setdefault(operation.label, set())
        modes = [schemathesis.GenerationMode.POSITIVE]
        if any(operation.iter_parameters()) or operation.body:
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            _fuzz(operation, mode, send, statuses)


def _fuzz(operation: Any, mode: Any, send: Send, statuses: set[int]) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        response = send(case)
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
