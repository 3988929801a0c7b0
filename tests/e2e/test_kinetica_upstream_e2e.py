"""A restart-safe job front for a real Kinetica: a `jobstore serve` process on PostgreSQL with
`--kinetica-upstream` pointing at a stand-in Kinetica (a real HTTP server, tests/support/
kinetica_upstream.py), driven by Kinetica's OFFICIAL client (`gpudb==7.2.3.13`, unchanged).

The client creates jobs of endpoints jobstore does not define (`/alter/table`, `/show/table`);
they run on the upstream in the request encoding the client chose, and `get_job` hands back
what the upstream answered. Restarts of either side (Kinetica, or the jobstore node mid-call)
do not lose a job.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.avro import avro_read
from tests.support.e2e import MakeServer, Server, clean_env, free_port, server_factory, wait_for
from tests.support.gpudb import (
    CLIENT_ENCODINGS,
    REQUEST_ENCODINGS,
    connect,
    job_payload,
    ok,
    response_bytes,
    wait_job,
)
from tests.support.kinetica_upstream import (
    ALTER_TABLE_REQUEST,
    ALTER_TABLE_RESPONSE,
    CONTENT_TYPES,
    SHOW_TABLE_REQUEST,
    StandInKinetica,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ONLY_POSTGRES = pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
USER, PASSWORD = "etl", "pw-e2e-kinetica-19"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
RETRIES = {"retry_errors": "true", "max_attempts": "10", "backoff_seconds": "0.2"}


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    with server_factory(database_url, tmp_path) as make:
        yield make


def front(servers: MakeServer, kinetica: StandInKinetica) -> Server:
    """A jobstore node in front of `kinetica`, signing in with Basic credentials."""
    env = {
        **clean_env(),
        "JOBSTORE_KINETICA_UPSTREAM_USER": USER,
        "JOBSTORE_KINETICA_UPSTREAM_PASSWORD": PASSWORD,
    }
    return servers(node_id="front", extra_args=["--kinetica-upstream", kinetica.url], env=env)


def create(db: Any, endpoint: str, req_enc: str, schema: Any, value: Any, **options: str) -> int:
    data, data_str = job_payload(db.encoding, req_enc, schema, value)
    resp = ok(db.create_job(endpoint, req_enc, data, data_str, options))
    return int(resp.job_id)


def answer(db: Any, done: Any) -> Any:
    """A DONE job's response, decoded as a user of the client must."""
    if done.response_encoding == "json":
        assert done.job_response in (b"", "")
        return json.loads(done.job_response_str)
    assert done.response_encoding == "binary" and done.job_response_str == ""
    return avro_read(ALTER_TABLE_RESPONSE, response_bytes(db.encoding, done.job_response))


@ONLY_POSTGRES
def test_the_official_client_runs_kinetica_endpoints_through_jobstore_in_every_encoding(
    servers: MakeServer,
) -> None:
    with StandInKinetica(require_auth=BASIC) as kinetica:
        node = front(servers, kinetica).start()
        jobs: dict[tuple[str, str], tuple[Any, int, dict[str, Any]]] = {}
        for client_enc in CLIENT_ENCODINGS:
            db = connect(node.url, client_enc)
            for req_enc in REQUEST_ENCODINGS:
                # Non-ASCII text: Avro bytes >= 0x80, Latin-1 strings in the JSON client.
                value: dict[str, Any] = {
                    "table_name": "orders",
                    "action": f"comment_{client_enc}_{req_enc}".lower(),
                    "value": f"set by {client_enc}/{req_enc}: Größe ✓",
                    "options": {"client": client_enc},
                }
                job_id = create(db, "/alter/table", req_enc, ALTER_TABLE_REQUEST, value)
                jobs[client_enc, req_enc] = (db, job_id, value)
        for (client_enc, req_enc), (db, job_id, value) in jobs.items():
            done = wait_job(db, job_id, logs=node.logs)
            assert done.job_status == "DONE", (client_enc, req_enc, done.status_map)
            assert done.endpoint == "/alter/table"
            assert done.response_encoding == ("json" if req_enc == "json" else "binary")
            assert answer(db, done) == {
                "table_name": "orders",
                "action": value["action"],
                "value": value["value"],
                "info": {"previous_value": "", "user": USER},
            }, (client_enc, req_enc)
            assert kinetica.tables["orders"][value["action"]] == value["value"]
        calls = kinetica.calls("/alter/table")
        assert sorted(c.encoding for c in calls) == sorted(REQUEST_ENCODINGS * 3)
        for call in calls:
            assert call.request is not None and call.request["options"]["client"]
            assert call.headers["content-type"] == CONTENT_TYPES[call.encoding]
            assert call.headers["authorization"] == BASIC
            assert call.headers["x-jobstore-attempt"] == "1"
        assert PASSWORD not in node.logs()


@ONLY_POSTGRES
def test_an_error_answer_reaches_the_client_as_an_error_job(servers: MakeServer) -> None:
    with StandInKinetica() as kinetica:
        node = front(servers, kinetica).start()
        for client_enc in ("BINARY", "JSON"):
            db = connect(node.url, client_enc)
            value = {"table_name": "missing", "options": {}}
            job_id = create(db, "/show/table", "binary", SHOW_TABLE_REQUEST, value, **RETRIES)
            ended = wait_job(db, job_id, logs=node.logs)
            assert ended.job_status == "ERROR" and not ended.successful
            assert ended.status_map["error_message"] == (
                f"{kinetica.host}: Table 'missing' does not exist"
            )
            assert response_bytes(client_enc, ended.job_response) == b""
        assert len(kinetica.calls("/show/table")) == 2  # ERROR is final: never retried


@ONLY_POSTGRES
def test_a_kinetica_restart_and_a_jobstore_restart_mid_call_lose_no_job(
    servers: MakeServer,
) -> None:
    kinetica = StandInKinetica(port=free_port(), require_auth=BASIC)
    try:
        node = front(servers, kinetica).start()
        db = connect(node.url, "SNAPPY")
        value = {"table_name": "customers", "action": "ttl", "value": "60", "options": {}}

        # 1. Kinetica is down when the job runs, and comes back: the retry finds it.
        first = create(db, "/alter/table", "snappy", ALTER_TABLE_REQUEST, value, **RETRIES)

        def refused() -> bool:
            status_map = ok(db.get_job(first, {})).status_map
            return "could not reach" in status_map.get("last_error", "")

        wait_for("a refused connection", refused, logs=node.logs)
        kinetica.up()
        done = wait_job(db, first, logs=node.logs)
        assert done.job_status == "DONE", done.status_map
        assert answer(db, done)["info"]["previous_value"] == "-1"

        # 2. The jobstore node dies (SIGKILL) while Kinetica holds the call; a new process
        #    on the same database runs the job again, with the same Idempotency-Key.
        kinetica.hold_next(1)
        again = {**value, "value": "120"}
        second = create(db, "/alter/table", "binary", ALTER_TABLE_REQUEST, again, **RETRIES)
        [held] = [c for c in kinetica.wait_for_calls("/alter/table", 2) if c.request == again]
        node.kill()
        kinetica.release()  # Kinetica did it, but nobody was there to hear the answer
        node.start()
        done = wait_job(db, second, timeout=30, logs=node.logs)
        assert done.job_status == "DONE", done.status_map
        assert answer(db, done)["value"] == "120"
        runs = [c for c in kinetica.calls("/alter/table") if c.request == again]
        assert [c.headers["x-jobstore-attempt"] for c in runs] == ["1", "2"]
        assert {c.headers["idempotency-key"] for c in runs} == {held.headers["idempotency-key"]}
    finally:
        kinetica.release()
        kinetica.down()
