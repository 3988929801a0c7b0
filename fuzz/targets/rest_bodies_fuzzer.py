"""Fuzz target `rest_bodies`: the REST facade's JSON bodies and the job list's query string
(api/rest/inputs.py).

Input: if it starts with `?`, its first line is the query string of GET /api/v1/jobs (read as
Starlette reads one) and the rest is the body; else all of it is the body. The body is read as
a create (POST /api/v1/jobs), then as a bulk retry and cancel, and as a prune. A create the
parser accepts goes on through JobService.prepare_job (no database is touched).

Rule: each parser returns its request or raises the facade's Problem (a 400 problem document)
or a ClientError; an accepted create's payload is storable text. Anything else is a crash.

    python fuzz/targets/rest_bodies_fuzzer.py fuzz/corpus/rest_bodies
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from urllib.parse import parse_qsl

from jobstore.api.rest.inputs import parse_bulk, parse_create, parse_json, parse_list, parse_prune
from jobstore.api.rest.problems import Problem
from jobstore.codecs import jsontext
from jobstore.core.jobs import JobService
from jobstore.domain.errors import ClientError
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database

REFUSALS = (Problem, ClientError)


@functools.cache
def service() -> JobService:
    """The job service over a database it never opens (prepare_job is pure)."""
    folder = tempfile.mkdtemp(prefix="jobstore-fuzz-")
    return JobService(Database(f"sqlite:///{folder}/unused.db"), default_registry())


def test_one_input(data: bytes) -> None:
    if data.startswith(b"?"):
        query, _, data = data[1:].partition(b"\n")
        params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        with contextlib.suppress(*REFUSALS):
            parse_list(params, created_by=None)
    try:
        body = parse_json(data)
    except REFUSALS:
        return
    for action in ("retry", "cancel"):
        with contextlib.suppress(*REFUSALS):
            parse_bulk(action, body, created_by="alice")
    with contextlib.suppress(*REFUSALS):
        parse_prune(body)
    try:
        create = parse_create(body, None)
        service().prepare_job(create.endpoint, create.payload, create.options())
    except REFUSALS:
        return
    if create.payload.text is not None:
        jsontext.check_text(create.payload.text, what="payload")


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
