"""Every facade's input parsing through the real app, in-process, on SQLite and PostgreSQL.

Hostile envelopes (Kinetica), job and definition bodies and listing query strings (CDM), create
bodies and list query strings (REST), dashboard query strings and hostile credentials, all with
authentication required. Invariants:

* never a 5xx, and never Kinetica's disguised one (a 400 "internal error while serving");
* every answer in its facade's dialect: a `gpudb_response` envelope in the request's wire, a CDM
  error body (or the API gateway's, for credentials), an RFC 9457 problem document, HTML;
* what a create accepted reads back through every facade without error: the REST job, result
  and attempts, Kinetica's /get/job in every wire and its listing, the dashboard's pages, CDM's
  own views; before and after the jobs ran.

Cases are derandomized and few (the budget of `make test`); `make fuzz` searches wider.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from jobstore.api.rest import RestConfig
from jobstore.cli.node import Node, node_for_tests
from jobstore.codecs import snappy
from jobstore.store import Database
from tests.support.avro import SLEEP_REQUEST, avro_write
from tests.support.kinetica import CONTENT_TYPES, SCHEMAS, WIRES, decode_reply

pytestmark = pytest.mark.timeout(300)

RUNS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each case is several requests
)
CDM = "/v1.1/p1/clusters/c1/cdm"
CDM_ERROR_KEYS = {"errCode", "externalMessage", "code", "message"}
GATEWAY_KEYS = {"error_code", "error_msg", "request_id"}
PROBLEM_KEYS = {"type", "title", "status", "detail"}

SPECIAL = ["\x00", "\ud800", "\udfff", "\ud83d", "é", "'", '"', "\\", "$", "{", "}", "/", "%", "\n"]
HOSTILE = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL)), max_size=10
)
NUMBERS = st.sampled_from([0, -1, 2**63, 10**30, 1e400, -1e400, float("nan"), 0.5, 2**31])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | NUMBERS | HOSTILE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE, inner, max_size=3),
    max_leaves=8,
)
# Values every door takes (no NUL, no lone surrogate, finite): creates that get through.
PLAIN_TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=10)
PLAIN_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(-1e9, 1e9) | PLAIN_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PLAIN_TEXT, inner, max_size=3),
    max_leaves=8,
)
DEEP = ["[" * 100_000, "[" * 900 + "]" * 900, '{"a":' * 2000 + "1" + "}" * 2000]
LONG_LIST = json.dumps(list(range(100_000)))


def picked(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of `values`, drawn by index: a strategy holding long values has a huge repr."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def dumps(value: Any) -> bytes:
    """JSON as a client's json.dumps writes it: lone surrogates and NUL as \\u escapes."""
    return json.dumps(value).encode()


def quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# -- the app -------------------------------------------------------------------------------------


@dataclass
class Facades:
    """A node's app with authentication required, alice's token, and the jobs created so far."""

    runner: asyncio.Runner
    node: Node
    client: httpx.AsyncClient
    token: str
    accepted: list[int] = field(default_factory=list)  # job ids
    serial: Iterator[int] = field(default_factory=itertools.count)  # for unique names

    def send(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        *,
        signed: bool = True,
    ) -> httpx.Response:
        all_headers: dict[str, str | bytes] = {}
        if signed and url.startswith("/v1.1/"):  # CDM: the IAM token header
            all_headers["X-Auth-Token"] = self.token
        elif signed:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        raw = [
            (k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in all_headers.items()
        ]
        request = self.client.request(method, url, content=body, headers=raw)
        return self.runner.run(request)

    def kinetica(self, path: str, body: bytes, wire: str) -> dict[str, Any]:
        """POST a Kinetica body; the answer, checked to be the envelope the client reads."""
        response = self.send("POST", path, body, {"Content-Type": CONTENT_TYPES[wire]})
        assert response.status_code in (200, 400, 401), (path, body[:200], response.status_code)
        reply = decode_reply(response, wire, SCHEMAS[path][1])
        assert (response.status_code == 200) is reply.ok, reply
        assert "internal error" not in reply.message, (path, body[:200], reply.message)
        return {"ok": reply.ok, "message": reply.message, "record": reply.record}


@contextlib.contextmanager
def facades(database_url: str) -> Iterator[Facades]:
    with asyncio.Runner() as runner:
        db = Database(database_url, pool_size=4)
        node = node_for_tests(db, node_id="fuzz", auth="required")
        rest = RestConfig(authenticator=node.accounts, max_wait_seconds=0.05)
        app = node.app(run_background=False, rest=rest)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://t")
        try:
            runner.run(node.accounts.add_user("alice", "pw-alice"))
            _, token = runner.run(node.accounts.create_token("alice", "p1"))
            yield Facades(runner, node, client, token)
        finally:
            runner.run(client.aclose())
            runner.run(node.executor.stop())
            runner.run(db.dispose())


# -- each facade's dialect -----------------------------------------------------------------------


def no_5xx(response: httpx.Response, statuses: tuple[int, ...]) -> str:
    """Where the answer came from; it is no 5xx, and one of `statuses` when they are given."""
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, (where, response.status_code, response.text[:300])
    assert not statuses or response.status_code in statuses, (where, response.text[:300])
    return where


def rest_answer(response: httpx.Response, *statuses: int) -> Any:
    """A REST answer: JSON, or an RFC 9457 problem document for an error."""
    where = no_5xx(response, statuses)
    body = response.json()
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", where
        assert set(body) >= PROBLEM_KEYS and body["status"] == response.status_code, body
    else:
        assert response.headers["content-type"].startswith("application/json"), where
    return body


def cdm_answer(response: httpx.Response, *statuses: int) -> Any:
    """A CDM answer: JSON, with CDM's error body (or the API gateway's) for an error."""
    where = no_5xx(response, statuses)
    body = response.json()
    assert response.status_code < 400 or set(body) in (CDM_ERROR_KEYS, GATEWAY_KEYS), where
    return body


def page_answer(response: httpx.Response, *statuses: int) -> str:
    """A dashboard answer: an HTML page."""
    where = no_5xx(response, statuses)
    assert response.headers["content-type"].startswith("text/html"), where
    return response.text


def read_back(f: Facades, job_id: int, *, ran: bool) -> None:
    """A job a create accepted, through every facade. Once jobs ran, a job removed on
    completion answers as removed (410, or Kinetica's error naming it); nothing else may fail."""
    now = (200, 410) if ran else (200,)
    rest_answer(f.send("GET", f"/api/v1/jobs/{job_id}"), *now)
    rest_answer(f.send("GET", f"/api/v1/jobs/{job_id}/result"), 200, 409, 410)
    rest_answer(f.send("GET", f"/api/v1/jobs/{job_id}/attempts"), *now)
    for wire in WIRES:
        body = avro_write(SCHEMAS["/get/job"][0], {"job_id": job_id, "options": {}})
        if wire == "json":
            body = dumps({"job_id": job_id, "options": {}})
        elif wire == "snappy":
            body = snappy.compress(body)
        got = f.kinetica("/get/job", body, wire)
        assert got["ok"] or (ran and "removed" in got["message"]), got
    page_answer(f.send("GET", f"/ui/jobs/{job_id}"), *now)
    page_answer(f.send("GET", f"/ui/jobs/{job_id}/live"), *now)


def read_listings(f: Facades) -> None:
    rest_answer(f.send("GET", "/api/v1/jobs?limit=500"), 200)
    page_answer(f.send("GET", "/ui"), 200)
    page_answer(f.send("GET", "/ui/live?status=active"), 200)
    show = dumps({"options": {"show_async_jobs": "true"}})
    assert f.kinetica("/admin/show/jobs", show, "json")["ok"]
    cdm_answer(f.send("GET", f"{CDM}/job/all?page_size=100"), 200)


def run_and_read_back(f: Facades) -> None:
    """Cancel the sleeps (they may be long), run the rest, and read every job back again."""
    rest_answer(f.send("POST", "/api/v1/jobs/cancel", dumps({"endpoint": "/sleep"})), 200)
    for _ in range(20):
        if not f.runner.run(f.node.executor.run_once()):
            break
    for job_id in f.accepted[:25]:
        read_back(f, job_id, ran=True)
    read_listings(f)


# -- Kinetica ------------------------------------------------------------------------------------


def avro_any(value: Any, kind: Any) -> bytes:
    """Avro binary of `value`, strings with lone surrogates too (as UTF-8 bytes no decoder
    takes): what a broken client could send, which fastavro itself cannot write."""

    def varint(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while n & ~0x7F:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes([*out, n])

    if kind == "string":
        raw: bytes = value.encode("utf-8", "surrogatepass")
        return varint(len(raw)) + raw
    if kind == "bytes":
        return varint(len(value)) + bytes(value)
    if kind == "long":
        return varint(value)
    if kind["type"] == "map":
        items = b"".join(avro_any(k, "string") + avro_any(v, "string") for k, v in value.items())
        return (varint(len(value)) + items if value else b"") + b"\x00"
    items = b"".join(avro_any(v, kind["items"]) for v in value)
    return (varint(len(value)) + items if value else b"") + b"\x00"


def kinetica_body(path: str, record: dict[str, Any], wire: str) -> bytes:
    if wire == "json":
        return dumps(
            {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in record.items()}
        )
    fields = SCHEMAS[path][0]["fields"]
    body = b"".join(avro_any(record[f["name"]], f["type"]) for f in fields)
    return snappy.compress(body) if wire == "snappy" else body


SLEEP_0 = avro_write(SLEEP_REQUEST, {"seconds": 0.0})
OPTION_NAMES = [
    "job_tag", "priority", "delay_seconds", "max_attempts", "retry_errors", "timeout_seconds",
    "remove_job_on_complete", "run_at", "backoff_seconds", "concurrency_key", "show_async_jobs",
]  # fmt: skip
OPTION_TEXT = ["1", "0", "-1", "true", "1e400", "nan", "2026-12-06T18:00:00Z", "9" * 30, "t-1"]
OPTIONS = st.dictionaries(
    st.sampled_from(OPTION_NAMES) | HOSTILE, st.sampled_from(OPTION_TEXT) | HOSTILE, max_size=3
)
VALID_PAYLOADS = [
    ("/echo", "json", b"", '{"hello": "world"}'),
    ("/echo", "binary", b"\x00\x01\x80\xff", ""),
    ("/sleep", "binary", SLEEP_0, ""),
    ("/sleep", "snappy", snappy.compress(SLEEP_0), ""),
    ("/fail", "json", b"", '{"message": "boom"}'),
]
PAYLOADS = st.one_of(
    st.sampled_from([*VALID_PAYLOADS, ("/sleep", "snappy", SLEEP_0, "")]),  # not compressed
    st.tuples(st.just("/echo"), st.just("json"), st.just(b""), JSON_VALUES.map(json.dumps)),
    st.tuples(
        st.sampled_from(["/echo", "/sleep", "/fail", "/nope", ""]) | HOSTILE,
        st.sampled_from(["binary", "json", "snappy", " JSON "]) | HOSTILE,
        st.binary(max_size=24),
        picked([*DEEP, LONG_LIST, "1" * 5000]) | HOSTILE,
    ),
)


CREATE_FIELDS_KINETICA = ("endpoint", "request_encoding", "data", "data_str")


def create_record(payload: tuple[Any, ...], options: dict[str, str]) -> dict[str, Any]:
    """A `create_job_request` of (endpoint, request_encoding, data, data_str) and options."""
    return {**dict(zip(CREATE_FIELDS_KINETICA, payload, strict=True)), "options": options}


def echo_json(data_str: str, options: dict[str, str]) -> dict[str, Any]:
    return create_record(("/echo", "json", b"", data_str), options)


def test_kinetica_create_and_hostile_envelopes(database_url: str) -> None:
    with facades(database_url) as f:

        @settings(RUNS, max_examples=25)  # each case is up to 14 requests
        @given(
            record=st.builds(create_record, PAYLOADS, OPTIONS),
            wire=st.sampled_from(WIRES),
            other=st.binary(max_size=40),
        )
        @example(record=echo_json('"x"', {"note": "a\x00b"}), wire="binary", other=b"")
        def check(record: dict[str, Any], wire: str, other: bytes) -> None:
            got = f.kinetica("/create/job", kinetica_body("/create/job", record, wire), wire)
            if got["ok"]:
                job_id = int(got["record"]["job_id"])
                f.accepted.append(job_id)
                read_back(f, job_id, ran=False)
            for path in ("/get/job", "/admin/alter/jobs", "/admin/show/jobs"):
                f.kinetica(path, other, wire)  # garbage: an ERROR envelope, never a crash
            action, options = record["request_encoding"], record["options"]
            alter = {"job_ids": [1, 2, 3, 4], "action": action, "options": options}
            f.kinetica("/admin/alter/jobs", kinetica_body("/admin/alter/jobs", alter, wire), wire)

        check()
        huge = dumps({"job_ids": list(range(1, 100_000)), "action": "cancel", "options": {}})
        f.kinetica("/admin/alter/jobs", huge, "json")
        for data_str in (LONG_LIST, *DEEP):
            f.kinetica(
                "/create/job", kinetica_body("/create/job", echo_json(data_str, {}), "json"), "json"
            )
        run_and_read_back(f)
        # The fuzzing above proves little if valid requests are refused too: they must not be.
        for n, payload in enumerate(VALID_PAYLOADS):
            for wire in WIRES:
                record = create_record(payload, {"job_tag": f"valid-{n}-{wire}"})
                got = f.kinetica("/create/job", kinetica_body("/create/job", record, wire), wire)
                assert got["ok"], (record, wire, got["message"])
                read_back(f, int(got["record"]["job_id"]), ran=False)


# -- REST ----------------------------------------------------------------------------------------

CREATE_FIELDS = [
    "endpoint", "payload", "payload_base64", "encoding", "tag", "remove_on_complete", "run_at",
    "delay_seconds", "priority", "max_attempts", "retry_errors", "backoff_seconds",
    "timeout_seconds", "concurrency_key",
]  # fmt: skip
REST_BODIES = st.one_of(
    st.fixed_dictionaries(
        {"endpoint": st.sampled_from(["/echo", "/echo", "/fail"]), "payload": PLAIN_VALUES},
        optional={
            "tag": st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True) | HOSTILE,
            "priority": st.integers(-5, 5) | NUMBERS,
            "remove_on_complete": st.booleans(),
            "delay_seconds": st.sampled_from([0, 0.5, 3600]) | NUMBERS,
        },
    ).map(dumps),
    st.fixed_dictionaries(
        {"endpoint": st.sampled_from(["/echo", "/fail"]), "payload": JSON_VALUES}
    ).map(dumps),
    st.dictionaries(st.sampled_from(CREATE_FIELDS) | HOSTILE, JSON_VALUES, max_size=4).map(dumps),
    st.binary(max_size=40),
    picked(
        [d.encode() for d in DEEP]
        + [b'{"endpoint": "/echo", "payload": NaN}', b'{"endpoint": "/echo", "payload": 1e400}']
        + [b'{"endpoint": "/echo", "payload": ' + b"[" * 900 + b"]" * 900 + b"}"]
    ),
)
MEDIA = st.sampled_from(
    ["application/json"] * 4 + ["", "text/plain", "application/x+json; q=1", "application/json; x"]
)
KEYS = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), HOSTILE)
LIST_NAMES = ["status", "endpoint", "tag", "created_after", "created_before", "before", "limit"]
QUERY = st.lists(
    st.tuples(st.sampled_from(LIST_NAMES) | HOSTILE, HOSTILE | st.sampled_from(OPTION_TEXT)),
    max_size=4,
).map(lambda pairs: "&".join(f"{quoted(k)}={quoted(v)}" for k, v in pairs))
RAW_QUERY = st.lists(
    st.sampled_from(["%00", "%ff", "%ED%A0%80", "&", "=", "+", "status=", "x"]), max_size=6
).map("".join)


def test_rest_create_bodies_and_list_queries(database_url: str) -> None:
    with facades(database_url) as f:

        @RUNS
        @given(body=REST_BODIES, media=MEDIA, key=KEYS, query=QUERY | RAW_QUERY)
        def check(body: bytes, media: str, key: str, query: str) -> None:
            headers: dict[str, str | bytes] = {"Content-Type": media} if media else {}
            if key:
                raw = key.encode("utf-8", "surrogatepass")
                headers["Idempotency-Key"] = raw.replace(b"\r", b"").replace(b"\n", b"")
            created = f.send("POST", "/api/v1/jobs", body, headers)
            answer = rest_answer(created, 200, 201, 400, 409, 415)
            if created.status_code in (200, 201):
                f.accepted.append(int(answer["id"]))
                read_back(f, int(answer["id"]), ran=False)
            rest_answer(f.send("GET", f"/api/v1/jobs?{query}"), 200, 400)
            for action in ("retry", "cancel"):
                rest_answer(f.send("POST", f"/api/v1/jobs/{action}", body), 200, 400, 415)

        check()
        run_and_read_back(f)


# -- CDM -----------------------------------------------------------------------------------------


def config(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {"configs": [{"name": "jobstoreConfig", "inputs": list(inputs)}]}


# Mostly valid definitions (or nothing past validation is reached), each with some hostility.
INPUT_VALUES = st.one_of(
    *[st.sampled_from(["orders", "${region}", "${dateformat(yyyy-MM-dd, -1, DAY)}", "x"])] * 3,
    st.sampled_from(["${", "${nope}", "${dateformat(Q)}", "${timestamp(1, EON)}"]),
    HOSTILE,
    JSON_VALUES,
)
TEMPLATES = st.one_of(
    *[st.sampled_from(['{"a": "${region}"}', '"${timestamp()}"', '{"seconds": 0}', ""])] * 3,
    st.sampled_from(["{", '{"seconds": 1e999}', '{"a": "\\u0000"}', "[" * 70 + "]" * 70]),
    HOSTILE,
)
ENDPOINTS = st.one_of(st.sampled_from(["/echo", "/fail", "/sleep", "${ep}"]), HOSTILE)
DRIVER_ECHO = {"name": "jobstoreConfig.endpoint", "value": "/echo"}
SCHEDULED = [
    {"name": "schedulerConfig.isSchedulerJob", "value": "true"},
    {"name": "schedulerConfig.cycleType", "value": "hour"},
    {"name": "schedulerConfig.startDate", "value": "2026-01-01 00:00:00"},
]
DRIVER = st.builds(
    lambda endpoint, template, extra, scheduled: config(
        {"name": "jobstoreConfig.endpoint", "value": endpoint},
        {"name": "jobstoreConfig.request", "value": template},
        *({"name": k, "value": v} for k, v in extra.items()),
        *(SCHEDULED if scheduled else []),
    ),
    st.one_of(st.just("/echo"), ENDPOINTS),
    TEMPLATES,
    st.dictionaries(st.just("note") | HOSTILE, INPUT_VALUES, max_size=2),
    st.sampled_from([False, False, True]),
)
JOB_NAMES = st.one_of(st.from_regex(r"[a-z][a-z0-9_.-]{0,15}", fullmatch=True), HOSTILE)
CDM_JOBS = st.fixed_dictionaries(
    {"name": JOB_NAMES, "driver-config-values": DRIVER},
    optional={
        "job_type": st.sampled_from(["NORMAL_JOB", "BATCH_JOB", "SCENARIO_JOB", "normal"]),
        "from-config-values": st.builds(lambda v: config({"name": "t", "value": v}), INPUT_VALUES),
        "to-link-name": INPUT_VALUES,
        "isDeleteJob": st.booleans() | JSON_VALUES,
    },
)
CDM_JOB_LISTS = st.lists(CDM_JOBS, min_size=1, max_size=2)
GARBAGE = st.binary(max_size=30) | picked([d.encode() for d in DEEP])
VARIABLES = st.one_of(
    st.fixed_dictionaries(
        {"region": st.sampled_from(["eu-west-1", "${region}"]) | HOSTILE},
        optional={"ep": st.just("/echo") | HOSTILE},
    ),
    st.dictionaries(HOSTILE, HOSTILE | JSON_VALUES, max_size=3),
)
CDM_QUERY = st.lists(
    st.tuples(
        st.sampled_from(["filter", "jobType", "page_no", "page_size", "jname"]) | HOSTILE,
        HOSTILE | st.sampled_from(OPTION_TEXT),
    ),
    max_size=3,
).map(lambda pairs: "&".join(f"{quoted(k)}={quoted(v)}" for k, v in pairs))


def echo_definition(name: str) -> dict[str, Any]:
    return {"name": name, "driver-config-values": config(DRIVER_ECHO)}


def test_cdm_definitions_starts_and_listings(database_url: str) -> None:
    with facades(database_url) as f:

        @RUNS
        @given(
            jobs=CDM_JOB_LISTS, garbage=GARBAGE, variables=VARIABLES, query=CDM_QUERY | RAW_QUERY
        )
        @example(jobs=[echo_definition("a/b")], garbage=b"", variables={}, query="")
        def check(
            jobs: list[dict[str, Any]], garbage: bytes, variables: dict[str, Any], query: str
        ) -> None:
            for path in ("/job", "/job/x/start", "/job/x"):
                method = "POST" if path == "/job" else "PUT"
                cdm_answer(f.send(method, f"{CDM}{path}", garbage), 200, 400)
            cdm_answer(f.send("GET", f"{CDM}/job/all?{query}"), 200, 400)
            cdm_answer(f.send("GET", f"{CDM}/submissions?{query}"), 200, 400)
            # Names made unique, or most creates would repeat an earlier one.
            jobs = [{**job, "name": f"{job['name']}-{next(f.serial)}"} for job in jobs]
            created = cdm_answer(f.send("POST", f"{CDM}/job", dumps({"jobs": jobs})), 200, 400)
            if "validation-result" not in created:
                return
            for job in jobs:
                name = quoted(job["name"])
                cdm_answer(f.send("GET", f"{CDM}/job/{name}"), 200)
                start = dumps({"variables": variables})
                started = cdm_answer(f.send("PUT", f"{CDM}/job/{name}/start", start), 200, 400)
                cdm_answer(f.send("GET", f"{CDM}/job/{name}/status"), 200)
                cdm_answer(f.send("GET", f"{CDM}/submissions?jname={name}"), 200)
                if "submissions" in started:
                    job_id = int(started["submissions"][0]["submission-id"])
                    f.accepted.append(job_id)
                    read_back(f, job_id, ran=False)

        check()
        run_and_read_back(f)


# -- the dashboard, and credentials --------------------------------------------------------------

UI_NAMES = ["status", "endpoint", "q", "before", "cancel", "retry", "bulk"]
UI_QUERY = st.lists(
    st.tuples(
        st.sampled_from(UI_NAMES) | HOSTILE, HOSTILE | st.sampled_from(["all", "queued", "1"])
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{quoted(k)}={quoted(v)}" for k, v in pairs))


def test_dashboard_query_strings(database_url: str) -> None:
    with facades(database_url) as f:
        payload = {"html": "<script>'\"&</script>", "deep": [[[]]], "text": "\u00e9\uffff"}
        created = f.send("POST", "/api/v1/jobs", dumps({"endpoint": "/echo", "payload": payload}))
        job_id = int(rest_answer(created, 201)["id"])

        @RUNS
        @given(query=UI_QUERY | RAW_QUERY)
        @example(query="endpoint=%00")
        @example(query="q=" + "9" * 30)
        def check(query: str) -> None:
            for path in ("/ui", "/ui/live", f"/ui/jobs/{job_id}", "/ui/schedules", "/ui/nope"):
                page_answer(f.send("GET", f"{path}?{query}"), 200, 400, 404)

        check()


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


TEXT_BYTES = HOSTILE.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=12)
CREDENTIALS = st.one_of(
    st.builds(basic, st.sampled_from([b"alice"]) | TEXT_BYTES, TEXT_BYTES),
    st.binary(max_size=30).map(lambda b: b"Basic " + b),
    st.binary(max_size=30).map(lambda b: b"Bearer " + b),
    st.binary(max_size=30),
).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b""))
GUARDED = {
    "kinetica": ("POST", "/show/system/status"),
    "rest": ("GET", "/api/v1/stats"),
    "dashboard": ("GET", "/ui"),
    "cdm": ("GET", f"{CDM}/job/all"),
}


def test_hostile_credentials_get_each_facades_401(database_url: str) -> None:
    with facades(database_url) as f:

        @settings(RUNS, max_examples=20)  # a new Basic pair costs a scrypt (~50 ms)
        @given(value=CREDENTIALS, facade=st.sampled_from(sorted(GUARDED)))
        @example(value=basic(b"alice\x00", b"pw-alice"), facade="rest")
        @example(value=basic(b"al\xed\xa0\x80ice", b"pw"), facade="dashboard")
        @example(value=b"Bearer jst_\x00", facade="kinetica")
        @example(value=b"Basic \xe9", facade="rest")  # not ASCII: base64 raised ValueError
        def check(value: bytes, facade: str) -> None:
            method, path = GUARDED[facade]
            name = "X-Auth-Token" if facade == "cdm" else "Authorization"
            headers: dict[str, str | bytes] = {name: value, "Content-Type": "application/json"}
            body = b"{}" if method == "POST" else None
            response = f.send(method, path, body, headers, signed=False)
            if facade == "kinetica":
                assert response.status_code == 401, response.content
                decode_reply(response, "json", None)
            elif facade == "rest":
                assert rest_answer(response, 401)["type"].endswith("/unauthorized")
            elif facade == "dashboard":
                page_answer(response, 401)
            else:
                assert set(cdm_answer(response, 401)) == GATEWAY_KEYS

        check()
