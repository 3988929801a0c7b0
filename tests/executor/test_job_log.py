"""One log line when a job starts and one when it ends, with the job's fields as structured
values (JSON logs carry them as keys, not only inside the message)."""

from __future__ import annotations

import json
import logging

import pytest

from jobstore.cli.logs import JsonFormatter
from jobstore.cli.node import node_for_tests
from jobstore.domain.models import Encoding, Payload
from jobstore.store import Database

RUNNER = "jobstore.executor.runner"


def lines_of(caplog: pytest.LogCaptureFixture, job_id: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == RUNNER and getattr(r, "job_id", None) == job_id]


async def test_a_job_logs_its_start_and_its_end(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=RUNNER)
    node = node_for_tests(db, node_id="log-test")
    ok = await node.jobs.create_job("/echo", Payload(Encoding.JSON, text='{"a": 1}'))
    bad = await node.jobs.create_job("/fail", Payload(Encoding.JSON, text='{"message": "no"}'))
    try:
        assert sorted(await node.executor.run_once()) == [ok.job_id, bad.job_id]
    finally:
        await node.executor.stop()

    started, ended = lines_of(caplog, ok.job_id)
    assert started.getMessage() == f"job {ok.job_id} started: /echo, attempt 1"
    assert ended.getMessage().startswith(f"job {ok.job_id} done in ")
    assert ended.__dict__["outcome"] == "done" and ended.__dict__["attempt"] == 1
    assert ended.__dict__["duration_s"] >= 0
    [_, failed] = lines_of(caplog, bad.job_id)
    assert failed.__dict__["outcome"] == "error" and failed.__dict__["endpoint"] == "/fail"

    doc = json.loads(JsonFormatter().format(ended))
    assert (doc["job_id"], doc["endpoint"], doc["outcome"]) == (ok.job_id, "/echo", "done")
