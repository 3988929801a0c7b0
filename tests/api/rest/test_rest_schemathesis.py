"""The REST API against its own OpenAPI document, fuzzed by schemathesis (SQLite, PostgreSQL).

schemathesis reads /api/v1/openapi.json from the app and generates requests for every operation,
valid ones and invalid ones; each answer must be no 5xx and must match the document: a declared
status code, the declared content type, a body matching the declared schema and the declared
headers (Location, WWW-Authenticate, Retry-After). schemathesis's coverage phase then sends, for
every operation, each parameter and body field in turn missing, of another type, past its bounds
or outside its pattern, and a method the path does not take: each must be refused with a
documented 4xx.

Requests go through httpx's in-process ASGI transport on one event loop that this test owns, so
the app's database connections live and die on one loop. The database is seeded with jobs in
every state first, and the fuzzer's job ids and tags are narrowed to (mostly) existing ones, or
every lookup would be a 404.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobstore.api.rest import RestConfig
from jobstore.cli.node import node_for_tests
from jobstore.core.accounts import Authenticator
from jobstore.core.jobs import JobService
from jobstore.endpoints.registry import default_registry
from jobstore.executor.runner import Executor, ExecutorConfig
from jobstore.store import Database
from tests.support.avro import SLEEP_REQUEST, avro_write

pytestmark = pytest.mark.timeout(120)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# An invalid request must also be refused (a 4xx), not merely answered as the document allows.
# Only for the coverage phase: the fuzzing below narrows ids and tags to seeded ones, and a tag
# outside that list may still be a job's.
REFUSAL_CHECKS = [*CHECKS, negative_data_rejection]
MAX_EXAMPLES = 15
COVER_SCHEDULE = "cover-1"
COVER_SCHEDULE_BODY = {"endpoint": "/echo", "every_seconds": 3600, "enabled": False}
BASE_URL = "http://testserver"


def _avro_sleep(seconds: float) -> str:
    return base64.b64encode(avro_write(SLEEP_REQUEST, {"seconds": seconds})).decode()


# Jobs in every state the API can show: scheduled, queued, done (JSON and Avro), error, cancelled,
# removed.
SEED = [
    {"endpoint": "/echo", "payload": {"hello": "world"}, "tag": "echo-1"},
    {"endpoint": "/fail", "payload": {"message": "boom"}, "tag": "fail-1"},
    {"endpoint": "/sleep", "payload_base64": _avro_sleep(0.0), "tag": "sleep-1"},
    {"endpoint": "/sleep", "payload_base64": _avro_sleep(float("nan")), "tag": "nan-1"},
    {"endpoint": "/echo", "payload": [1, 2], "tag": "gone-1", "remove_on_complete": True},
]
LATER = [
    {"endpoint": "/echo", "payload": "still queued", "tag": "queued-1"},
    {"endpoint": "/echo", "payload": "later", "tag": "later-1", "delay_seconds": 3600},
    {"endpoint": "/echo", "payload": None, "tag": "cancel-1"},
]


class Fuzzer:
    """One app on one event loop, and the schemathesis schema read from it."""

    def __init__(self, runner: asyncio.Runner, client: httpx.AsyncClient) -> None:
        self.runner = runner
        self.client = client
        self.headers: dict[str, str] = {}

    def send(self, case: schemathesis.Case) -> httpx.Response:
        """Send a generated case the way schemathesis's own transport would serialize it."""
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers={**kwargs.get("headers", {}), **self.headers},
            params=kwargs.get("params"),
            data=kwargs.get("data"),
            json=kwargs.get("json"),
        ).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        assert prepared.method is not None and prepared.url is not None
        return self.runner.run(
            self.client.request(
                prepared.method,
                prepared.url,
                headers=dict(prepared.headers),
                content=body,
            )
        )

    def schema(self, narrow: Callable[[dict[str, Any]], None]) -> Any:
        document = self.runner.run(self.client.get("/api/v1/openapi.json")).json()
        narrow(document)
        schema = schemathesis.openapi.from_dict(document)
        schema.validate()  # against the OpenAPI 3.1 meta-schema
        return schema

    def fuzz(self, schema: Any) -> dict[str, set[int]]:
        """Every operation, positive and negative cases; returns the statuses seen per label."""
        seen: dict[str, set[int]] = {}
        for result in schema.get_all_operations():
            operation = result.ok()
            modes = [schemathesis.GenerationMode.POSITIVE]
            if any(operation.iter_parameters()) or operation.body:
                modes.append(schemathesis.GenerationMode.NEGATIVE)
            for mode in modes:
                self._fuzz_operation(operation, mode, seen.setdefault(operation.label, set()))
        return seen

    def cover(self, schema: Any) -> tuple[dict[str, set[int]], list[str]]:
        """schemathesis's coverage phase, invalid cases only, for every operation: each parameter
        and body field in turn missing, of another type, past its bounds, outside its pattern or
        enum, the body as a whole of another type, a method the path does not take. Returns the
        statuses seen per label and the report (with a curl line) of every case that failed."""
        seen: dict[str, set[int]] = {}
        failures: list[str] = []
        negative = [schemathesis.GenerationMode.NEGATIVE]
        for result in schema.get_all_operations():
            operation = result.ok()
            statuses = seen.setdefault(operation.label, set())
            config = schema.config.generation_for(operation=operation, phase="coverage")
            for case in schema.iter_coverage_cases(
                operation, generation_modes=negative, generation_config=config
            ):
                response = self.send(case)
                statuses.add(response.status_code)
                try:
                    case.validate_response(response, checks=REFUSAL_CHECKS)
                except FailureGroup as exc:
                    failures.append(_brief(exc))
        return seen, failures

    def _fuzz_operation(self, operation: Any, mode: Any, seen: set[int]) -> None:
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases on every run: a failure reproduces
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            response = self.send(case)
            seen.add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        run()


def _brief(failure: FailureGroup) -> str:
    """A failed case in a few lines: what failed, the answer's status, a curl to reproduce it."""
    keep = ("- ", "Invalid component", "[", "curl ")
    lines = [line.strip() for line in str(failure).splitlines()]
    return "\n".join(line for line in lines if line.startswith(keep))


def _narrow(max_id: int, tags: list[str]) -> Callable[[dict[str, Any]], None]:
    """Point the fuzzer's ids and tags at seeded jobs (and a few missing ones)."""

    def narrow(document: dict[str, Any]) -> None:
        parameters = document["components"]["parameters"]
        parameters["JobId"]["schema"] = {"type": "integer", "minimum": 1, "maximum": max_id + 2}
        parameters["Tag"]["schema"] = {"type": "string", "enum": [*tags, "no-such-tag"]}

    return narrow


@contextmanager
def running_app(
    database_url: str, *, auth: bool = False
) -> Iterator[tuple[Fuzzer, JobService, Database]]:
    with asyncio.Runner() as runner:
        db = Database(database_url, pool_size=4)
        node = node_for_tests(db, node_id="fuzz")
        service = node.jobs
        authenticator = node.accounts if auth else None
        rest = RestConfig(authenticator=authenticator, max_wait_seconds=0.05)
        app = node.app(run_background=False, rest=rest)
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        try:
            yield Fuzzer(runner, client), service, db
        finally:
            runner.run(client.aclose())
            runner.run(db.dispose())


def _seed(fuzzer: Fuzzer, db: Database) -> tuple[int, list[str]]:
    """Create the seed jobs over the API and run them; returns the highest id and the tags."""
    ids = []
    for body in SEED:
        response = fuzzer.runner.run(
            fuzzer.client.post("/api/v1/jobs", json=body, headers=fuzzer.headers)
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    executor = Executor(db, default_registry(), ExecutorConfig(node_id="fuzz"))
    finished = fuzzer.runner.run(executor.run_once())
    assert sorted(finished) == sorted(ids)
    for body in LATER:
        response = fuzzer.runner.run(
            fuzzer.client.post("/api/v1/jobs", json=body, headers=fuzzer.headers)
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    cancelled = fuzzer.runner.run(
        fuzzer.client.post(f"/api/v1/jobs/{ids[-1]}/cancel", headers=fuzzer.headers)
    )
    assert cancelled.status_code == 202, cancelled.text
    return max(ids), [str(b["tag"]) for b in SEED + LATER]


def test_the_api_matches_its_openapi_document(database_url: str) -> None:
    with running_app(database_url) as (fuzzer, _, db):
        max_id, tags = _seed(fuzzer, db)
        seen = fuzzer.fuzz(fuzzer.schema(_narrow(max_id, tags)))
    print({label: sorted(codes) for label, codes in seen.items()})
    # The fuzzer reached the interesting answers, not only the 400s.
    lookups = seen["GET /api/v1/jobs/{job_id}"] | seen["GET /api/v1/jobs/tag/{tag}"]
    assert {200, 404, 410} <= lookups | seen["GET /api/v1/jobs/{job_id}/result"]
    assert {200, 409} <= seen["GET /api/v1/jobs/{job_id}/result"]
    assert {201, 400} <= seen["POST /api/v1/jobs"]
    assert {200, 400} <= seen["GET /api/v1/jobs"]
    assert 200 in seen["POST /api/v1/prune"]
    assert {200, 404, 409, 410} <= seen["POST /api/v1/jobs/{job_id}/retry"]
    assert {200, 404, 410} <= seen["GET /api/v1/jobs/{job_id}/attempts"]
    assert {200, 400} <= seen["POST /api/v1/jobs/retry"] & seen["POST /api/v1/jobs/cancel"]


def _names_that_exist(tags: list[str]) -> Callable[[dict[str, Any]], None]:
    """Tags and the schedule name narrowed to seeded ones, keeping their patterns (job ids keep
    their whole range: an id past a BIGINT is a case to refuse; any limit key may be set)."""

    def narrow(document: dict[str, Any]) -> None:
        parameters = document["components"]["parameters"]
        parameters["Tag"]["schema"]["enum"] = tags
        parameters["ScheduleName"]["schema"]["enum"] = [COVER_SCHEDULE]

    return narrow


def test_every_operation_refuses_what_its_document_forbids(database_url: str) -> None:
    """Invalid cases reach each route's own checks: a valid tag or schedule name in the other
    places is one that exists."""
    with running_app(database_url) as (fuzzer, _, db):
        _, tags = _seed(fuzzer, db)
        schedule = {"name": COVER_SCHEDULE, **COVER_SCHEDULE_BODY}
        response = fuzzer.runner.run(fuzzer.client.post("/api/v1/schedules", json=schedule))
        assert response.status_code == 201, response.text
        seen, failures = fuzzer.cover(fuzzer.schema(_names_that_exist(tags)))
    print({label: sorted(codes) for label, codes in seen.items()})
    assert not failures, f"{len(failures)} invalid requests not refused as documented:\n\n" + (
        "\n\n".join(failures)
    )
    # Every path was sent something invalid, and refused it. (schemathesis sends the methods a
    # path does not take once per path, so an operation without inputs may have had nothing.)
    paths: dict[str, set[int]] = {}
    for label, codes in seen.items():
        paths.setdefault(label.split(" ", 1)[1], set()).update(codes)
    assert not [path for path, codes in paths.items() if not codes & {400, 404, 405}]


def test_an_empty_retention_is_refused(database_url: str) -> None:
    """Found by the coverage phase: "" is no duration (the document's pattern refuses it), but
    prune reads it as "forever" and answers 200, silently not pruning that state."""
    with running_app(database_url) as (fuzzer, _, _db):
        body = {"retention": {"done": "", "error": "0s"}}
        response = fuzzer.runner.run(fuzzer.client.post("/api/v1/prune", json=body))
    assert response.status_code == 400, response.text


def test_an_invalid_request_that_is_accepted_is_caught(database_url: str) -> None:
    """The refusal check bites: a document that caps `limit` at 10 (the API takes up to 500)
    sees limit=11 answered 200."""

    def narrower(document: dict[str, Any]) -> None:
        parameters = document["paths"]["/api/v1/jobs"]["get"]["parameters"]
        (limit,) = (p for p in parameters if p["name"] == "limit")
        limit["schema"]["maximum"] = 10

    with running_app(database_url) as (fuzzer, _, _db):
        schema = fuzzer.schema(narrower).include(operation_id="listJobs")
        _, failures = fuzzer.cover(schema)
    assert any("request accepted" in f and "`limit`" in f for f in failures), failures


def test_the_api_with_authentication_matches_its_openapi_document(database_url: str) -> None:
    """Auth on, as a user who is not an admin: 401s without credentials and 403 for prune."""
    with running_app(database_url, auth=True) as (fuzzer, _, db):
        auth = Authenticator(db)
        fuzzer.runner.run(auth.add_user("fuzzer", None))
        _, token = fuzzer.runner.run(auth.create_token("fuzzer"))
        fuzzer.headers = {"Authorization": f"Bearer {token}"}
        max_id, tags = _seed(fuzzer, db)
        schema = fuzzer.schema(_narrow(max_id, tags))
        seen = fuzzer.fuzz(schema.include(method="POST"))
        assert 403 in seen["POST /api/v1/prune"]
        fuzzer.headers = {}
        seen = fuzzer.fuzz(schema.include(path="/api/v1/stats"))
        assert seen["GET /api/v1/stats"] == {401}


def test_a_wrong_document_is_caught(database_url: str) -> None:
    """The checks bite: a document that says GET /api/v1/stats answers something else fails."""

    def wrong(document: dict[str, Any]) -> None:
        stats = document["components"]["schemas"]["Stats"]
        stats["properties"]["capped_at"] = {"type": "string"}

    with running_app(database_url) as (fuzzer, _, _db):
        schema = fuzzer.schema(wrong).include(path="/api/v1/stats")
        with pytest.raises(FailureGroup, match="Response violates schema"):
            fuzzer.fuzz(schema)
