"""Helpers for driving real `jobstore serve` processes with Kinetica's official client.

The client (`gpudb`, used unchanged) is built by `connect`; job payloads are produced and
decoded the way a user of the client must do it (spec: /work/shared/specs/kinetica-wire.md
§2-§4): Avro via fastavro for `binary`, raw-block snappy around that for `snappy`, JSON text
for `json`; in the client's JSON mode, bytes travel as Latin-1 strings.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import gpudb
import snappy

from tests.support.avro import avro_write
from tests.support.e2e import run_cli_ok, wait_for

CLIENT_ENCODINGS = ("BINARY", "SNAPPY", "JSON")
REQUEST_ENCODINGS = ("binary", "json", "snappy")

# /echo and /fail declare no schema: /echo hands the bytes back unchanged, so any record does.
ECHO_RECORD = fastavro.parse_schema(
    {
        "type": "record",
        "name": "echo_request",
        "fields": [{"name": "text", "type": "string"}, {"name": "blob", "type": "bytes"}],
    }
)
FAIL_REQUEST = fastavro.parse_schema(
    {"type": "record", "name": "fail_request", "fields": [{"name": "message", "type": "string"}]}
)


# -- the client --------------------------------------------------------------------------------


def connect(host: str | list[str], encoding: str = "BINARY", **options: Any) -> gpudb.GPUdb:
    """`gpudb.GPUdb(host, options={...})` with the encoding and any other client options."""
    return gpudb.GPUdb(host=host, options={"encoding": encoding, **options})


def job_payload(
    client_encoding: str, request_encoding: str, schema: Any, value: Mapping[str, Any]
) -> tuple[bytes | str, str]:
    """(data, data_str) for create_job: the unused one empty, of the type the client needs."""
    if request_encoding == "json":
        data: bytes | str = "" if client_encoding == "JSON" else b""
        return data, json.dumps(value)
    raw = avro_write(schema, dict(value))
    if request_encoding == "snappy":
        raw = snappy.compress(raw)
    # JSON mode carries Avro `bytes` as one code point per byte (spec §2.3).
    return (raw.decode("latin-1") if client_encoding == "JSON" else raw), ""


def response_bytes(client_encoding: str, job_response: bytes | str) -> bytes:
    """get_job's job_response as bytes: the JSON client hands it back as a Latin-1 str."""
    if client_encoding == "JSON":
        assert isinstance(job_response, str), f"JSON mode gave {type(job_response)}"
        return job_response.encode("latin-1")
    assert isinstance(job_response, bytes), f"{client_encoding} mode gave {type(job_response)}"
    return job_response


def ok(resp: Any) -> Any:
    """The response, after checking the envelope said OK."""
    assert resp.is_ok(), f"call failed: {resp.get_error_msg()!r} ({resp})"
    return resp


def create(
    db: gpudb.GPUdb,
    endpoint: str,
    request_encoding: str,
    schema: Any,
    value: Mapping[str, Any],
    *,
    tag: str | None = None,
) -> int:
    data, data_str = job_payload(db.encoding, request_encoding, schema, value)
    options = {"job_tag": tag} if tag else {}
    resp = ok(db.create_job(endpoint, request_encoding, data, data_str, options))
    if tag:
        assert resp.info["job_tag"] == tag
    return int(resp.job_id)


def wait_job(
    db: gpudb.GPUdb,
    job_id: int,
    *,
    tag: str | None = None,
    states: tuple[str, ...] = ("DONE", "ERROR", "CANCELLED"),
    timeout: float = 15.0,
    logs: Any = None,
) -> Any:
    """Poll get_job through the client until the job reaches one of `states`."""
    options = {"job_tag": tag} if tag else {}

    def probe() -> Any:
        resp = ok(db.get_job(job_id, options))
        return resp if resp.job_status in states else None

    return wait_for(
        f"job {job_id} (tag {tag}) to reach {states}",
        probe,
        timeout=timeout,
        interval=0.05,
        logs=logs,
    )


# -- what the client says on the side: log records and Python warnings ---------------------------


@dataclass
class Noise:
    records: list[logging.LogRecord] = field(default_factory=list)
    warnings: list[warnings.WarningMessage] = field(default_factory=list)

    def describe(self) -> list[str]:
        return [f"log {r.name} {r.levelname}: {r.getMessage()}" for r in self.records] + [
            f"warning {w.category.__name__}: {w.message}" for w in self.warnings
        ]


@contextmanager
def client_noise(level: int = logging.WARNING) -> Iterator[Noise]:
    """Record every log record >= `level` from ANY logger, and every Python warning.

    pytest's caplog only sees records that reach the root logger, but the gpudb client logs
    through per-instance loggers with `propagate = False` and its own stderr handler, so the
    records are taken at `Logger.handle`, which every logger goes through.
    """
    noise = Noise()
    original = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.levelno >= level:
            noise.records.append(record)
        original(self, record)

    logging.Logger.handle = handle  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield noise
        noise.warnings.extend(caught)
    finally:
        logging.Logger.handle = original  # type: ignore[method-assign]


# -- users and tokens (the CLI, with a password on stdin) ---------------------------------------


def add_user(database_url: str, cwd: Path, name: str, password: str, *, admin: bool = False) -> str:
    args = ["users", "add", name, "--password-stdin", "--database-url", database_url]
    out = run_cli_ok([*args, *(["--admin"] if admin else [])], cwd, stdin=password + "\n").stdout
    return out.strip()


def create_token(database_url: str, cwd: Path, user: str) -> str:
    out = run_cli_ok(
        ["tokens", "create", "--user", user, "--database-url", database_url], cwd
    ).stdout
    return out.strip().splitlines()[-1].strip()
