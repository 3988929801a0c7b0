"""Write the seed corpus, fuzz/corpus/<target>/: a handful of real, valid inputs per target.

    python fuzz/make_seeds.py

Each Kinetica request seed is checked to be accepted by the facade's decoder (a warning says
when it is not: a valid request refused is a bug, and the seed is kept). Each seed is named by
the SHA-1 of its bytes, as libFuzzer names inputs, so running this again changes nothing unless
a seed changed.
Seeds added by hand (docs/fuzzing.md) sit beside these and are left alone.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import snappy

from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.domain.errors import ClientError
from jobstore.endpoints.builtins import FAIL_REQUEST, SLEEP_REQUEST

CORPUS = Path(__file__).resolve().parent / "corpus"
PATHS = sorted(ENDPOINTS)
WIRE_BYTE = {"binary": 0, "snappy": 1, "json": 2}
ENDPOINT_BYTE = {"/echo": 0, "/fail": 1, "/sleep": 2}
ENCODING_BYTE = {"binary": 0, "json": 1, "snappy": 2}


def avro(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def kinetica_body(path: str, record: dict[str, Any], wire_name: str) -> bytes:
    """A request as the official client sends it (wire spec §2)."""
    if wire_name == "json":
        shown = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in record.items()}
        return json.dumps(shown).encode()
    data = avro(ENDPOINTS[path][0].definition, record)
    return snappy.compress(data) if wire_name == "snappy" else data


def kinetica_envelope() -> list[bytes]:
    sleep = avro(SLEEP_REQUEST, {"seconds": 0.5})
    requests: list[tuple[str, dict[str, Any]]] = [
        (
            "/create/job",
            {
                "endpoint": "/echo",
                "request_encoding": "json",
                "data": b"",
                "data_str": '{"hello": "world"}',
                "options": {"job_tag": "seed-1"},
            },
        ),
        (
            "/create/job",
            {
                "endpoint": "/sleep",
                "request_encoding": "binary",
                "data": sleep,
                "data_str": "",
                "options": {"priority": "5", "delay_seconds": "1.5"},
            },
        ),
        ("/get/job", {"job_id": 1, "options": {}}),
        ("/get/job", {"job_id": 0, "options": {"job_tag": "seed-1"}}),
        ("/admin/show/jobs", {"options": {"show_async_jobs": "true", "limit": "10"}}),
        ("/admin/alter/jobs", {"job_ids": [1, 2], "action": "cancel", "options": {}}),
        ("/show/system/status", {"options": {}}),
        ("/show/system/properties", {"options": {}}),
    ]
    seeds = []
    for path, record in requests:
        for wire_name, first in WIRE_BYTE.items():
            body = kinetica_body(path, record, wire_name)
            enc = wire.WireEncoding[wire_name.upper()]
            try:
                assert wire.decode_request(body, enc, ENDPOINTS[path][0]) == record
            except (AssertionError, ClientError) as exc:  # a valid request refused: a bug
                print(f"warning: jobstore refuses the valid {wire_name} {path} seed: {exc!r}")
            seeds.append(bytes([first, PATHS.index(path)]) + body)
    return seeds


def kinetica_payloads() -> list[bytes]:
    given = [
        ("/echo", "json", b'{"hello": ["world", 1, 2.5, null, true]}'),
        ("/echo", "binary", b"\x00\x01\x80\xff"),
        ("/echo", "snappy", snappy.compress(b"echo me")),
        ("/fail", "json", b'{"message": "boom"}'),
        ("/fail", "binary", avro(FAIL_REQUEST, {"message": "boom"})),
        ("/sleep", "json", b'{"seconds": 0.25}'),
        ("/sleep", "binary", avro(SLEEP_REQUEST, {"seconds": 0.25})),
        ("/sleep", "snappy", snappy.compress(avro(SLEEP_REQUEST, {"seconds": 3.0}))),
    ]
    return [bytes([ENDPOINT_BYTE[ep], ENCODING_BYTE[enc]]) + data for ep, enc, data in given]


def snappy_blocks() -> list[bytes]:
    plain = [b"", b"hello world " * 10, avro(SLEEP_REQUEST, {"seconds": 1.0}), bytes(range(256))]
    return [snappy.compress(p) for p in plain]


def cdm_job(name: str, request: str | None, **driver: str) -> dict[str, Any]:
    """A CDM Job (cdm spec §2.1) running a jobstore endpoint."""
    inputs = {"jobstoreConfig.endpoint": "/echo", **driver}
    if request is not None:
        inputs["jobstoreConfig.request"] = request
    groups = [("jobstoreConfig", inputs)]

    def config(*pairs: tuple[str, dict[str, str]]) -> dict[str, Any]:
        return {
            "configs": [
                {"name": g, "inputs": [{"name": k, "value": v} for k, v in i.items()]}
                for g, i in pairs
            ]
        }

    return {
        "name": name,
        "job_type": "NORMAL_JOB",
        "from-link-name": "mysql_src",
        "from-connector-name": "generic-jdbc-connector",
        "to-link-name": "obs_dst",
        "to-connector-name": "obs-connector",
        "from-config-values": config(("fromJobConfig", {"fromJobConfig.tableName": "${table}"})),
        "to-config-values": config(("toJobConfig", {"toJobConfig.outputDirectory": "/exp/"})),
        "driver-config-values": config(*groups),
    }


def cdm_bodies() -> list[bytes]:
    template = '{"day": "${dateformat(yyyy-MM-dd, -1, DAY)}", "region": "${region}"}'
    scheduled = {
        "schedulerConfig.isSchedulerJob": "true",
        "schedulerConfig.cycleType": "hour",
        "schedulerConfig.cycle": "2",
        "schedulerConfig.startDate": "2026-01-01 00:00:00",
    }
    bodies: list[Any] = [
        {"jobs": [cdm_job("orders", None)], "variables": {"table": "orders"}},
        {"jobs": [cdm_job("daily", template)], "variables": {"region": "eu", "table": "t"}},
        {"jobs": [cdm_job("hourly", '{"at": "${timestamp()}"}', **scheduled)]},
        {"variables": {"region": "eu-west-1", "table": "orders", "n": 3}},
    ]
    return [json.dumps(b).encode() for b in bodies]


def cdm_variables() -> list[bytes]:
    texts = [
        "no placeholders at all",
        "s3://bucket/${region}/out\nregion=eu-west-1",
        "${dateformat(yyyy-MM-dd HH:mm:ss)}",
        "${dateformat(yyyy-MM-dd, -1, DAY)}/${dateformat(yyyyMM, 1, MONTH)}",
        "${timestamp()} ${timestamp(-2, HOUR)}",
        "${timestamp(dateformat(yyyyMMdd))}",
        "${dateformat(yy 'o''clock' H.SSS)}-${run.id}\nrun.id=42",
    ]
    return [t.encode() for t in texts]


def rest_bodies() -> list[bytes]:
    bodies: list[Any] = [
        {"endpoint": "/echo", "payload": {"hello": "world"}, "tag": "echo-1"},
        {"endpoint": "/sleep", "payload_base64": "AAAAAAAA4D8=", "priority": 3},
        {
            "endpoint": "/fail",
            "payload": {"message": "boom"},
            "max_attempts": 2,
            "retry_errors": True,
            "backoff_seconds": 1.5,
        },
        {
            "endpoint": "/echo",
            "payload": [1, 2],
            "run_at": "2026-12-06T18:00:00Z",
            "remove_on_complete": True,
            "concurrency_key": "k1",
        },
        {"status": ["error", "cancelled"], "endpoint": "/echo"},
        {"retention": {"done": "7d", "error": "forever"}},
    ]
    seeds = [json.dumps(b).encode() for b in bodies]
    seeds.append(b"?status=queued,done&endpoint=%2Fecho&limit=10&before=99\n" + seeds[0])
    seeds.append(
        b"?created_after=2026-01-01T00:00:00Z&created_before=2026-02-01T00:00:00%2B01:00\n"
    )
    return seeds


SEEDS = {
    "kinetica_envelope": kinetica_envelope,
    "kinetica_payloads": kinetica_payloads,
    "snappy": snappy_blocks,
    "cdm_bodies": cdm_bodies,
    "cdm_variables": cdm_variables,
    "rest_bodies": rest_bodies,
}


def main() -> None:
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for seed in make():
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        print(f"{target}: {len(list(folder.iterdir()))} seeds in {folder}")


if __name__ == "__main__":
    main()
