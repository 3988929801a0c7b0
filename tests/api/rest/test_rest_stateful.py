"""The REST API as a state machine: schemathesis follows the OpenAPI links (SQLite, PostgreSQL).

The document links each answer that names a resource to the operations on it: a created job to
its reads, cancel and retry; a cancel to a retry; a job to its concurrency key; a schedule to
its read, change, pause, resume, fire and delete; a fire to its job; a delete to a read that
must now be a 404; a named limit to its read and removal. schemathesis chains them into
scenarios of a few steps (mostly valid requests, some invalid ones) and checks every answer
against the document, that invalid input is refused, that what a create answered can be read
at once (ensure_resource_availability) and that what a delete removed is gone (use_after_free).
A PUT of a limit starts no scenario (schemathesis starts them with POSTs and plain GETs).

Requests go in-process, on the one event loop the app's database connections live on. No
executor runs: jobs stay queued until cancelled. Each scenario starts from empty tables, so it
can be replayed (and a failure reproduced) on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck
from schemathesis.core.transport import Response
from schemathesis.errors import FailureGroup
from schemathesis.generation.stateful.state_machine import (
    APIStateMachine,
    StepInput,
    StepOutput,
)
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    negative_data_rejection,
    use_after_free,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from jobstore.api.rest import RestConfig
from jobstore.cli.node import node_for_tests
from jobstore.store import Database
from jobstore.store.tables import (
    concurrency_limits,
    job_attempts,
    job_tombstones,
    jobs,
    schedules,
)
from tests.support.fuzz import BASE_URL, CHECKS, App

pytestmark = pytest.mark.timeout(120)

STATEFUL_CHECKS = [*CHECKS, negative_data_rejection, use_after_free, ensure_resource_availability]
SCENARIOS = 40
STEPS = 10
CREATE_JOB, JOB = "POST /api/v1/jobs", "/api/v1/jobs/{job_id}"
CREATE_SCHEDULE, SCHEDULE = "POST /api/v1/schedules", "/api/v1/schedules/{name}"

Seen = dict[str, set[int]]
TABLES = [job_attempts, job_tombstones, jobs, schedules, concurrency_limits]


@contextlib.contextmanager
def stateful_app(
    database_url: str, wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app
) -> Iterator[App]:
    """A node's app with no background tasks; long polls (`?wait=`) end after 0.05 s."""
    with asyncio.Runner() as runner:
        db = Database(database_url, pool_size=4)
        node = node_for_tests(db, node_id="stateful")
        app = wrap(node.app(run_background=False, rest=RestConfig(max_wait_seconds=0.05)))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        try:
            yield App(runner, node, client)
        finally:
            runner.run(client.aclose())
            runner.run(db.dispose())


async def _empty(db: Database) -> None:
    async with db.transaction() as conn:
        for table in TABLES:
            await conn.execute(sa.delete(table))


def _link(source: str, status: int, name: str, target: str) -> str:
    """How schemathesis names a transition: `POST /a -> [201] GetA -> GET /a/{id}`."""
    return f"{source} -> [{status}] {name} -> {target}"


def _workflow(app: App, schema: Any, seen: Seen) -> type[APIStateMachine]:
    """The schema's state machine, sending through `app` and recording what each link led to."""
    base: type[APIStateMachine] = schema.as_state_machine()

    class Workflow(base):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            # Every scenario starts from empty tables: what a step answers then depends on the
            # scenario alone, as Hypothesis needs to replay it (a name taken by an earlier
            # scenario would turn a 201 into a 409).
            app.runner.run(_empty(app.node.db))

        def step(self, input: StepInput) -> StepOutput:
            output: StepOutput = super().step(input)
            # A link is not always applied (schemathesis sometimes draws the value itself).
            if input.transition is not None and input.is_applied:
                statuses = seen.setdefault(input.transition.id, set())
                statuses.add(output.response.status_code)
            return output

        def call(self, case: schemathesis.Case[Any], **kwargs: Any) -> Response:
            return Response.from_any(app.send(case))

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=STATEFUL_CHECKS, recorder=self.recorder)

    return Workflow


def _run(app: App, schema: Any, *, scenarios: int = SCENARIOS) -> Seen:
    """Run the state machine for `scenarios` scenarios of at most STEPS steps, always the same
    ones (derandomized), so a failure reproduces; returns the statuses seen per link."""
    seen: Seen = {}
    _workflow(app, schema, seen).run(
        settings=hypothesis.settings(
            max_examples=scenarios,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
    )
    return seen


def _schema(app: App, narrow: Callable[[dict[str, Any]], None]) -> Any:
    document = app.runner.run(app.client.get("/api/v1/openapi.json")).json()
    narrow(document)
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()
    # The document's links only: schemathesis would add links it infers (to the callback
    # routes, say, which need a job token), and spend the budget on them.
    schema.config.phases.stateful.inference.algorithms = []
    return schema


def _creates_that_succeed(document: dict[str, Any]) -> None:
    """Creates that are mostly valid, or few scenarios would get past their first step: jobs of
    /echo (which takes any payload), schedules on an interval in a zone that exists. (Only
    narrowed where an invalid value is still refused: schemathesis's invalid cases follow
    this document, and one the API accepts would fail the run.)"""
    schemas = document["components"]["schemas"]
    schemas["CreateJob"]["properties"]["endpoint"]["enum"] = ["/echo"]
    create = schemas["CreateSchedule"]
    create["properties"]["endpoint"]["enum"] = ["/echo"]
    create["properties"]["timezone"]["enum"] = ["UTC", "Europe/Paris", None]
    create["required"].append("every_seconds")
    for name in ("cron", "payload_base64"):
        del create["properties"][name]


def test_the_linked_operations_hold_together(database_url: str) -> None:
    with stateful_app(database_url) as app:
        seen = _run(app, _schema(app, _creates_that_succeed))
    print("\n".join(f"{link}: {sorted(codes)}" for link, codes in sorted(seen.items())))
    reached = {
        _link(CREATE_JOB, 201, "GetJob", f"GET {JOB}"): 200,
        _link(CREATE_JOB, 201, "GetJobResult", f"GET {JOB}/result"): 409,
        _link(CREATE_JOB, 201, "CancelJob", f"POST {JOB}/cancel"): 202,
        _link(CREATE_SCHEDULE, 201, "GetSchedule", f"GET {SCHEDULE}"): 200,
        _link(CREATE_SCHEDULE, 201, "FireSchedule", f"POST {SCHEDULE}/fire"): 201,
        _link(CREATE_SCHEDULE, 201, "DeleteSchedule", f"DELETE {SCHEDULE}"): 204,
    }
    missed = {link: status for link, status in reached.items() if status not in seen.get(link, ())}
    assert not missed, f"links never followed to these answers: {missed}"
    # And links all over the document led somewhere that exists.
    succeeded = [link for link, codes in seen.items() if any(200 <= c < 300 for c in codes)]
    assert len(succeeded) >= 12, succeeded


@pytest.mark.parametrize(
    ("operations", "chain"),
    [
        pytest.param(
            ["createJob", "cancelJob", "retryJob", "getJob"],
            [
                (_link(CREATE_JOB, 201, "CancelJob", f"POST {JOB}/cancel"), 202),
                (_link(f"POST {JOB}/cancel", 202, "RetryJob", f"POST {JOB}/retry"), 200),
                (_link(f"POST {JOB}/retry", 200, "GetJob", f"GET {JOB}"), 200),
            ],
            id="job-cancel-retry",
        ),
        pytest.param(
            ["createSchedule", "deleteSchedule", "getSchedule"],
            [
                (_link(CREATE_SCHEDULE, 201, "DeleteSchedule", f"DELETE {SCHEDULE}"), 204),
                (_link(f"DELETE {SCHEDULE}", 204, "GetDeletedSchedule", f"GET {SCHEDULE}"), 404),
            ],
            id="schedule-delete",
        ),
    ],
)
def test_a_lifecycle_holds_together(
    database_url: str, operations: list[str], chain: list[tuple[str, int]]
) -> None:
    """A chain of links, on its own so that scenarios get to its end: a cancelled job retried
    and read again; a schedule deleted, then read (use_after_free wants its 404). 40
    scenarios: with 20, `make test` once ended on a loaded machine without the last link of
    the job's chain (the scenarios are derandomized, but which link follows depends on the
    answers, and the answers on timing)."""
    with stateful_app(database_url) as app:
        schema = _schema(app, _creates_that_succeed).include(operation_id=operations)
        seen = _run(app, schema, scenarios=40)
    print("\n".join(f"{link}: {sorted(codes)}" for link, codes in sorted(seen.items())))
    assert not [(link, status) for link, status in chain if status not in seen.get(link, ())]


def test_a_link_that_passes_the_wrong_value_is_caught(database_url: str) -> None:
    """The checks bite: a link that hands a create's `priority` to the attempts route as the
    job id finds no job where the create said it was."""

    def wrong(document: dict[str, Any]) -> None:
        _creates_that_succeed(document)
        link = document["components"]["links"]["GetJobAttempts"]
        link["parameters"] = {"path.job_id": "$response.body#/priority"}

    with stateful_app(database_url) as app:
        schema = _schema(app, wrong).include(operation_id=["createJob", "getJobAttempts"])
        with pytest.raises(FailureGroup, match="for a resource that was just created"):
            _run(app, schema, scenarios=20)


def _deletes_that_delete_nothing(app: ASGIApp) -> ASGIApp:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return answer


def test_a_delete_that_deletes_nothing_is_caught(database_url: str) -> None:
    """The checks bite: a DELETE that answers 204 and leaves the schedule there is found out
    by the read that follows it."""
    with stateful_app(database_url, _deletes_that_delete_nothing) as app:
        operations = ["createSchedule", "deleteSchedule", "getSchedule"]
        schema = _schema(app, _creates_that_succeed).include(operation_id=operations)
        with pytest.raises(FailureGroup, match="previously deleted"):
            _run(app, schema, scenarios=20)
