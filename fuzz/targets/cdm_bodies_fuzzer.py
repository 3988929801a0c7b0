"""Fuzz target `cdm_bodies`: the CDM facade's JSON bodies (api/cdm/routes.py, definitions.py).

Input: a request body. It is read as the create (and modify) body, `{"jobs": [Job, ...]}`, and
as the start body, `{"variables": {...}}`; no database is touched (the service's pure steps).

Rule: a body is JSON or refused with a ClientError; each job is a definition or refused with
a ClientError (CdmError); an accepted definition is JSON the database can store (no NaN or
Infinity), its schedule (if it asks for one) can be built, and starting it, with no variables
and with the body's own, gives a job payload or a ClientError. Anything else is a crash.

    python fuzz/targets/cdm_bodies_fuzzer.py fuzz/corpus/cdm_bodies
"""

from __future__ import annotations

import functools
import json
import tempfile
from datetime import UTC, datetime
from typing import Any

from jobstore.api.cdm.definitions import CdmService, _validate
from jobstore.codecs import jsontext
from jobstore.core.jobs import JobService
from jobstore.core.schedules import ScheduleService
from jobstore.domain.clock import ManualClock
from jobstore.domain.errors import ClientError
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database

PROJECT, CLUSTER, USER = "p1", "c1", "alice"
NOW = datetime(2026, 2, 28, 12, 30, 15, tzinfo=UTC)


@functools.cache
def service() -> CdmService:
    """The CDM service over a database it never opens (every step fuzzed here is pure)."""
    folder = tempfile.mkdtemp(prefix="jobstore-fuzz-")
    clock = ManualClock(NOW)
    jobs = JobService(Database(f"sqlite:///{folder}/unused.db"), default_registry(), clock=clock)
    return CdmService(jobs, clock=clock, schedules=ScheduleService(jobs, clock))


def start_variables(body: Any) -> dict[str, str] | None:
    """The start body's variables as the start route reads them; None when it refuses them."""
    given = body.get("variables", {}) if isinstance(body, dict) else None
    if not isinstance(given, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in given.items()
    ):
        return None
    variables = {k: str(v) for k, v in given.items()}
    for key, value in variables.items():
        try:
            jsontext.check_text(key, what="a variable name")
            jsontext.check_text(value, what=f"variable {key!r}")
        except ClientError:
            return None
    return variables


def start(
    cdm: CdmService, name: str, definition: dict[str, Any], variables: dict[str, str]
) -> None:
    """What a start does before it writes: resolve the definition, prepare its job."""
    try:
        endpoint, request, _ = cdm._request(name, definition, variables, NOW)
        payload = Payload(Encoding.JSON, text=json.dumps(request))
        cdm.jobs.prepare_job(endpoint, payload, created_by=USER, project=PROJECT)
    except ClientError:
        pass


def test_one_input(data: bytes) -> None:
    cdm = service()
    try:
        body = jsontext.loads(data, what="body") if data.strip() else {}
    except ClientError:
        return
    variables = start_variables(body)
    jobs = body.get("jobs") if isinstance(body, dict) else None
    for job in jobs if isinstance(jobs, list) else []:
        try:
            name, _, definition = _validate(job, cdm.jobs.registry.__contains__)
            cdm._schedule(PROJECT, CLUSTER, name, definition, USER)
        except ClientError:
            continue
        json.dumps(definition, allow_nan=False)  # stored as JSON: NaN is not JSON
        start(cdm, name, definition, {})
        if variables is not None:
            start(cdm, name, definition, variables)


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
