"""End to end: the Huawei CDM facade (/v1.1/{project}/clusters/{cluster}/cdm/...) of a real
`jobstore serve`, on SQLite and PostgreSQL.

Each test starts one server on the test's fresh database while the real CLI (`jobstore users
add`, `jobstore tokens create`) provisions alice's p1 token, speaks CDM's JSON API with
`X-Auth-Token`, and checks the jobs table directly. A CDM submission is one jobstore job, so
`submission-id` is a row of `jobs` and is visible through Kinetica's `/get/job` too.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobstore.core.accounts import Authenticator
from jobstore.store import Database
from tests.support.e2e import Server, job_rows, query, run_cli, server_factory, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

CLUSTER = "c1"
SQOOP = "org.apache.sqoop.submission.counter.SqoopCounters"
COUNTER_NAMES = {
    "BYTES_READ",
    "BYTES_WRITTEN",
    "ROWS_READ",
    "ROWS_WRITTEN",
    "ROWS_WRITTEN_SKIPPED",
    "FILES_READ",
    "FILES_WRITTEN",
    "FILES_SKIPPED",
    "TOTAL_FILES",
    "TOTAL_SIZE",
}
# Every key of a submission as the start answer gives it (CDM's full-form sample, plus the
# corrected spelling of `last-udpate-user`).
START_KEYS = {
    "submission-id",
    "job-name",
    "status",
    "progress",
    "creation-user",
    "creation-date",
    "execute-date",
    "last-update-date",
    "last-udpate-user",
    "last-update-user",
    "isIncrementing",
    "isStopingIncrement",
    "is-execute-auto",
    "isDeleteJob",
    "delete_rows",
    "update_rows",
    "write_rows",
}
# Status and history add `external-id`, and `counters` or `error-*` by outcome.
STATUS_KEYS = START_KEYS | {"external-id"}
CDM_ERROR_KEYS = {"errCode", "externalMessage", "code", "message"}
GATEWAY_ERROR_KEYS = {"error_code", "error_msg", "request_id"}
STOPPED = "The job was stopped by the user."


# -- building definitions -----------------------------------------------------------------------


def config(*groups: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """CDM ConfigValues: `{"configs": [{"name": group, "inputs": [{name, value}...]}...]}`."""
    return {
        "configs": [
            {"name": group, "inputs": [{"name": k, "value": v} for k, v in inputs.items()]}
            for group, inputs in groups
        ]
    }


def definition(
    name: str,
    endpoint: str,
    request: str | None = None,
    *,
    job_type: str | None = None,
    disposable: str | None = None,
    table: str = "orders",
) -> dict[str, Any]:
    """A CDM Job running the jobstore `endpoint` with the request template `request`."""
    driver = {"jobstoreConfig.endpoint": endpoint}
    if request is not None:
        driver["jobstoreConfig.request"] = request
    groups: list[tuple[str, dict[str, str]]] = [
        ("throttlingConfig", {"throttlingConfig.numExtractors": "1"}),
        ("jobstoreConfig", driver),
    ]
    if disposable is not None:
        groups.append(("schedulerConfig", {"schedulerConfig.disposableType": disposable}))
    job: dict[str, Any] = {
        "name": name,
        "from-link-name": "mysql_src",
        "from-connector-name": "generic-jdbc-connector",
        "to-link-name": "obs_dst",
        "to-connector-name": "obs-connector",
        "from-config-values": config(("fromJobConfig", {"fromJobConfig.tableName": table})),
        "to-config-values": config(("toJobConfig", {"toJobConfig.outputDirectory": "/exports/"})),
        "driver-config-values": config(*groups),
    }
    if job_type is not None:
        job["job_type"] = job_type
    return job


def config_inputs(values: dict[str, Any]) -> dict[str, Any]:
    return {i["name"]: i["value"] for c in values["configs"] for i in c.get("inputs", [])}


# -- the test's server and its clients ----------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Cdm:
    """One server, the test database and the tokens: alice (project p1), bob (project p2)."""

    server: Server
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def base(self, project: str = "p1", cluster: str = CLUSTER) -> str:
        return f"/v1.1/{project}/clusters/{cluster}/cdm"

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "alice",
        token: str | None = None,
        project: str | None = None,
        cluster: str = CLUSTER,
        body: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """`path` is under the CDM base of `project` (the user's own by default)."""
        headers: dict[str, str] = {}
        if token is None and user is not None:
            token = self.tokens[user]
        if token is not None:
            headers["X-Auth-Token"] = token
        if project is None:
            project = "p2" if user == "bob" else "p1"
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        if content is not None:
            kwargs["content"] = content
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        return self.server.client.request(method, self.base(project, cluster) + path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, (
            f"{method} {path}: HTTP {response.status_code} {response.text}\n"
            f"--- server logs ---\n{self.server.logs()}"
        )
        return response.json()

    def define(self, *jobs: dict[str, Any], user: str = "alice") -> dict[str, Any]:
        answer = self.ok("POST", "/job", body={"jobs": list(jobs)}, user=user)
        assert answer["name"] == jobs[0]["name"]
        assert set(answer) == {"name", "validation-result"}
        # An empty list, or empty objects, means no validation problem.
        assert all(item == {} for item in answer["validation-result"]), answer
        return answer

    def start(
        self, name: str, variables: dict[str, str] | None = None, *, user: str = "alice"
    ) -> dict[str, Any]:
        body = None if variables is None else {"variables": variables}
        answer = self.ok("PUT", f"/job/{name}/start", body=body, user=user)
        assert set(answer) == {"submissions"} and len(answer["submissions"]) == 1, answer
        sub: dict[str, Any] = answer["submissions"][0]
        return sub

    def status(self, name: str, *, user: str = "alice") -> dict[str, Any]:
        answer = self.ok("GET", f"/job/{name}/status", user=user)
        assert set(answer) == {"submissions"} and len(answer["submissions"]) == 1, answer
        sub: dict[str, Any] = answer["submissions"][0]
        return sub

    def wait_status(
        self, name: str, wanted: str, *, user: str = "alice", timeout: float = 15.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Poll the status until it reads `wanted`; (that view, every view seen on the way)."""
        seen: list[dict[str, Any]] = []

        def probe() -> dict[str, Any] | None:
            sub = self.status(name, user=user)
            seen.append(sub)
            return sub if sub["status"] == wanted else None

        final = wait_for(
            f"CDM job {name} to be {wanted}",
            probe,
            timeout=timeout,
            interval=0.05,
            logs=lambda: f"seen: {[s['status'] for s in seen[-5:]]}\n{self.server.logs()}",
        )
        return final, seen

    def history(self, name: str, *, user: str = "alice", **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.ok(
            "GET", "/submissions", user=user, params={"jname": name, **params}
        )
        assert set(answer) == {"submissions", "total", "page_no", "page_size"}, answer
        return answer

    def rows(self) -> list[dict[str, Any]]:
        return job_rows(self.database_url)


def assert_cdm_error(
    response: httpx.Response, code: str, message: str | None = None, *, status: int = 400
) -> str:
    """CDM's error body: all four keys, code twice, message twice. Returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == CDM_ERROR_KEYS, body
    assert body["errCode"] == body["code"] == code, body
    assert body["externalMessage"] == body["message"], body
    assert isinstance(body["message"], str) and body["message"], body
    assert "Traceback" not in response.text
    if message is not None:
        assert body["message"] == message, body
    return str(body["message"])


def assert_gateway_error(response: httpx.Response, code: str, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == GATEWAY_ERROR_KEYS, body
    assert body["error_code"] == code, body
    assert isinstance(body["request_id"], str) and len(body["request_id"]) >= 16, body
    assert isinstance(body["error_msg"], str) and body["error_msg"], body
    return str(body["error_msg"])


def assert_succeeded(sub: dict[str, Any], **counters: int) -> None:
    assert set(sub) == STATUS_KEYS | {"counters"}, sub
    assert sub["status"] == "SUCCEEDED" and sub["progress"] == 100
    expected = dict.fromkeys(COUNTER_NAMES, -1)
    expected.update(counters)
    assert sub["counters"] == {SQOOP: expected}


def assert_failed(sub: dict[str, Any]) -> None:
    assert set(sub) == STATUS_KEYS | {"error-summary", "error-details"}, sub
    assert sub["status"] == "FAILED" and sub["progress"] == -1


MakeCdm = Callable[..., Cdm]


async def _add_token(database_url: str, user: str, project: str) -> str:
    database = Database(database_url, pool_size=1)
    try:
        auth = Authenticator(database)
        await auth.add_user(user, None)
        _, token = await auth.create_token(user, project)
        return token
    finally:
        await database.dispose()


@pytest.fixture
def cdm_env(database_url: str, tmp_path: Path) -> Iterator[MakeCdm]:
    """Make the test's server (started) and tokens; the server is reaped at teardown.

    Alice's p1 token comes from the real CLI (`jobstore users add`, `jobstore tokens create`),
    run while the server starts: both only share the database. Bob's p2 token, when asked for,
    is made in-process with the same Authenticator (the CLI costs a second of CPU a call).
    """

    def cli(*args: str) -> str:
        result = run_cli([*args, "--database-url", database_url], tmp_path)
        assert result.returncode == 0, f"jobstore {' '.join(args)}: {result.stderr}"
        return result.stdout

    def alice_token() -> str:
        assert cli("users", "add", "alice", "--no-password").strip() == "added user alice"
        out = cli("tokens", "create", "--user", "alice", "--project", "p1").strip().splitlines()
        assert out[0].startswith("token ") and "project p1" in out[0], out
        return out[-1]

    with server_factory(database_url, tmp_path) as new_server:

        def make(*, bob: bool = False, extra_args: tuple[str, ...] = ()) -> Cdm:
            server = new_server(extra_args=extra_args)
            with ThreadPoolExecutor(max_workers=1) as pool:
                alice = pool.submit(alice_token)
                server.start()
                tokens = {"alice": alice.result()}
            if bob:
                tokens["bob"] = asyncio.run(_add_token(database_url, "bob", "p2"))
            return Cdm(server, database_url, tokens)

        yield make


# -- 1. define, start, follow the status, the history -------------------------------------------


def test_define_start_follow_status_and_history(cdm_env: MakeCdm) -> None:
    cdm = cdm_env()
    cdm.define(definition("daily_orders", "/sleep", '{"seconds": ${secs}}'))

    # Never started: NEVER_EXECUTED, and an empty history.
    never = cdm.status("daily_orders")
    assert never["job-name"] == "daily_orders"
    assert (never["status"], never["creation-user"]) == ("NEVER_EXECUTED", "alice")
    assert isinstance(never["creation-date"], int)
    assert "counters" not in never and "error-summary" not in never
    empty = cdm.history("daily_orders")
    assert (empty["submissions"], empty["total"], empty["page_no"], empty["page_size"]) == (
        [],
        0,
        1,
        10,
    )
    assert cdm.rows() == []

    before = now_ms()
    sub = cdm.start("daily_orders", {"secs": "1.5"})
    after = now_ms()
    assert set(sub) == START_KEYS, sub
    assert sub["status"] == "BOOTING" and sub["progress"] == 0
    assert sub["job-name"] == "daily_orders"
    assert sub["creation-user"] == sub["last-udpate-user"] == sub["last-update-user"] == "alice"
    # The node tells the database's time (store/clock.py), read over a round trip: it may be a
    # few milliseconds off this process's clock (once, 1 ms ahead failed the exact bounds).
    assert before - 1000 <= sub["creation-date"] <= after + 1000
    assert sub["execute-date"] == sub["last-update-date"] == sub["creation-date"]
    assert sub["isDeleteJob"] is False and sub["is-execute-auto"] is False
    assert sub["isIncrementing"] is False and sub["isStopingIncrement"] == ""
    assert (sub["delete_rows"], sub["update_rows"], sub["write_rows"]) == (0, 0, 0)
    [row] = cdm.rows()
    assert sub["submission-id"] == row["job_id"] and row["endpoint"] == "/sleep"
    first_id = row["job_id"]

    final, seen = cdm.wait_status("daily_orders", "SUCCEEDED")
    statuses = [s["status"] for s in seen]
    order = ["BOOTING", "RUNNING", "SUCCEEDED"]
    assert "RUNNING" in statuses, statuses
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    for view in seen[:-1]:
        # Not finished: no counters, no error keys; still the same submission.
        assert set(view) == STATUS_KEYS, view
        assert view["submission-id"] == first_id
        assert 0 <= view["progress"] < 100
    assert_succeeded(final)
    assert final["submission-id"] == first_id
    assert final["external-id"] == cdm.rows()[0]["job_tag"]
    assert final["creation-user"] == final["last-update-user"] == "alice"
    assert final["last-udpate-user"] == "alice"
    assert final["creation-date"] == sub["creation-date"]
    assert final["last-update-date"] >= final["execute-date"] >= final["creation-date"]
    assert cdm.rows()[0]["status"] == "done"

    # Two more runs (an unused variable is ignored); the history is newest first.
    ids = [first_id]
    for _ in range(2):
        ids.append(cdm.start("daily_orders", {"secs": "0", "unused": "x"})["submission-id"])
        cdm.wait_status("daily_orders", "SUCCEEDED")
    assert len(set(ids)) == 3
    assert [r["job_id"] for r in cdm.rows()] == sorted(ids)
    newest_first = sorted(ids, reverse=True)

    history = cdm.history("daily_orders")
    assert (history["total"], history["page_no"], history["page_size"]) == (3, 1, 10)
    assert [s["submission-id"] for s in history["submissions"]] == newest_first
    for s in history["submissions"]:
        assert_succeeded(s)
        assert s["job-name"] == "daily_orders" and s["creation-user"] == "alice"
    assert cdm.status("daily_orders")["submission-id"] == newest_first[0]

    # Paging.
    page = cdm.history("daily_orders", page_no=1, page_size=2)
    assert [s["submission-id"] for s in page["submissions"]] == newest_first[:2]
    assert (page["total"], page["page_no"], page["page_size"]) == (3, 1, 2)
    page = cdm.history("daily_orders", page_no=2, page_size=2)
    assert [s["submission-id"] for s in page["submissions"]] == newest_first[2:]
    assert (page["total"], page["page_no"], page["page_size"]) == (3, 2, 2)
    page = cdm.history("daily_orders", page=3, size=1)  # the aliases
    assert [s["submission-id"] for s in page["submissions"]] == [first_id]
    assert (page["total"], page["page_no"], page["page_size"]) == (3, 3, 1)
    page = cdm.history("daily_orders", page_no=5, page_size=2)
    assert (page["submissions"], page["total"]) == ([], 3)

    bad = {"jname": "daily_orders"}
    assert_cdm_error(
        cdm.request("GET", "/submissions", params={**bad, "page_size": "0"}), "Cdm.0010"
    )
    assert_cdm_error(cdm.request("GET", "/submissions", params={**bad, "page_no": "x"}), "Cdm.0009")
    assert_cdm_error(cdm.request("GET", "/submissions"), "Cdm.0014")


# -- 2 and 3. variables resolve into the job row, Kinetica sees it; a failing endpoint ---------


def test_start_resolves_variables_into_the_job_row_and_failures_report_their_message(
    cdm_env: MakeCdm,
) -> None:
    cdm = cdm_env()
    template = json.dumps(
        {
            "path": "/exports/${dateformat(yyyyMMdd)}/${region}.csv",
            "yesterday": "${dateformat(yyyy-MM-dd, -1, DAY)}",
            "now_ms": "${timestamp()}",
            "midnight_ms": "${timestamp(dateformat(yyyyMMdd))}",
            "counters": {"ROWS_READ": 7, "ROWS_WRITTEN": 6},
        }
    )
    job = definition("export", "/echo", template, table="orders_${region}")
    cdm.define(job)

    before, before_ms = datetime.now(UTC), now_ms()
    sub = cdm.start("export", {"region": "eu-west"})
    after, after_ms = datetime.now(UTC), now_ms()
    [row] = query(
        cdm.database_url,
        "SELECT job_id, endpoint, request_text, created_by, project FROM jobs",
    )
    assert row["job_id"] == sub["submission-id"]
    assert (row["endpoint"], row["created_by"], row["project"]) == ("/echo", "alice", "p1")
    text = row["request_text"]
    assert "${" not in text, text
    request = json.loads(text)
    days = {before.date(), after.date()}  # a start at midnight may see either day
    assert request["path"] in {f"/exports/{d:%Y%m%d}/eu-west.csv" for d in days}, request
    assert request["yesterday"] in {f"{d - timedelta(days=1):%Y-%m-%d}" for d in days}
    assert before_ms <= int(request["now_ms"]) <= after_ms, (before_ms, request, after_ms)
    midnights = {int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000) for d in days}
    assert int(request["midnight_ms"]) in midnights, request
    assert request["counters"] == {"ROWS_READ": 7, "ROWS_WRITTEN": 6}
    # CDM's own fields reach the endpoint under their own names, resolved.
    assert request["job-name"] == "export"
    assert request["from-link-name"] == "mysql_src"
    assert request["from-config-values"] == config(
        ("fromJobConfig", {"fromJobConfig.tableName": "orders_eu-west"})
    )
    # The definition keeps its placeholders.
    stored = cdm.ok("GET", "/job/export")["jobs"][0]
    assert stored["from-config-values"] == job["from-config-values"]
    assert stored["driver-config-values"] == job["driver-config-values"]

    final, _ = cdm.wait_status("export", "SUCCEEDED")
    # The endpoint's answer carried counters: they are reported, the rest stay -1.
    assert_succeeded(final, ROWS_READ=7, ROWS_WRITTEN=6)

    # Kinetica's /get/job sees the same job: a JSON envelope whose data_str is JSON text.
    response = cdm.server.post("/get/job", {"job_id": sub["submission-id"], "options": {}})
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["status"] == "OK" and isinstance(envelope["data_str"], str)
    got = json.loads(envelope["data_str"])
    assert got["endpoint"] == "/echo"
    assert (got["job_status"], got["successful"]) == ("DONE", True)
    assert got["info"]["job_id"] == str(sub["submission-id"])
    assert got["info"]["job_tag"] == final["external-id"]
    assert json.loads(got["job_response_str"]) == request

    # A failing endpoint: FAILED with progress -1 and its message, no counters.
    cdm.define(definition("broken", "/fail", '{"message": "${msg}"}'))
    sub = cdm.start("broken", {"msg": "disk full on node-7"})
    final, seen = cdm.wait_status("broken", "FAILED")
    assert_failed(final)
    assert final["submission-id"] == sub["submission-id"]
    assert "disk full on node-7" in final["error-summary"]
    assert "disk full on node-7" in final["error-details"]
    for view in seen[:-1]:
        assert "counters" not in view and "error-summary" not in view, view
    statuses = {r["job_id"]: r["status"] for r in cdm.rows()}
    assert statuses[sub["submission-id"]] == "error" and len(statuses) == 2
    [listed] = cdm.history("broken")["submissions"]
    assert listed == final


# -- 4 and 5. stop, and starting while a submission is queued or running ------------------------


def test_stop_and_start_while_active(cdm_env: MakeCdm) -> None:
    # One job at a time, so a second definition's submission stays queued behind the first.
    cdm = cdm_env(extra_args=("--concurrency", "1"))
    cdm.define(
        definition("long", "/sleep", '{"seconds": ${secs}}'),
        definition("behind", "/sleep", '{"seconds": 30}'),
    )

    running = cdm.start("long", {"secs": "30"})
    cdm.wait_status("long", "RUNNING")
    busy = cdm.request("PUT", "/job/long/start", body={"variables": {"secs": "0"}})
    assert_cdm_error(busy, "Cdm.0500", "Job[long] is already running.")
    assert [r["job_id"] for r in cdm.rows()] == [running["submission-id"]]

    queued = cdm.start("behind")  # no body at all: accepted
    time.sleep(0.5)  # the executor is busy: it stays queued
    view = cdm.status("behind")
    assert (view["status"], view["progress"]) == ("BOOTING", 0)
    assert view["submission-id"] == queued["submission-id"]
    assert_cdm_error(
        cdm.request("PUT", "/job/behind/start"), "Cdm.0500", "Job[behind] is already running."
    )
    assert len(cdm.rows()) == 2

    # Stop the queued one, then the running one.
    assert cdm.ok("PUT", "/job/behind/stop") == {"validation-result": []}
    stopped, _ = cdm.wait_status("behind", "FAILED", timeout=5)
    assert_failed(stopped)
    assert stopped["error-summary"] == STOPPED

    began = time.monotonic()
    assert cdm.ok("PUT", "/job/long/stop") == {"validation-result": []}
    stopped, _ = cdm.wait_status("long", "FAILED", timeout=5)
    took = time.monotonic() - began
    assert took < 3, f"stop took {took:.1f}s"
    assert_failed(stopped)
    assert stopped["submission-id"] == running["submission-id"]
    assert stopped["error-summary"] == STOPPED
    assert STOPPED in stopped["error-details"]
    statuses = {r["job_id"]: r["status"] for r in cdm.rows()}
    assert statuses == {running["submission-id"]: "cancelled", queued["submission-id"]: "cancelled"}

    # Nothing runs now: stop warns, and a start is accepted again.
    warned = cdm.ok("PUT", "/job/long/stop")
    assert warned == {
        "validation-result": [{"message": "Job[long] is not running.", "status": "WARNING"}]
    }
    again = cdm.start("long", {"secs": "0"})
    final, _ = cdm.wait_status("long", "SUCCEEDED")
    assert final["submission-id"] == again["submission-id"]
    assert_cdm_error(cdm.request("PUT", "/job/ghost/stop"), "Cdm.0100", "Job[ghost] doesn't exist.")


# -- 5. racing clients: one start wins, one create wins -----------------------------------------


def race(
    cdm: Cdm, count: int, send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """`count` clients send at the same moment; their answers."""
    barrier = threading.Barrier(count)

    def one(_: int) -> httpx.Response:
        with httpx.Client(
            base_url=cdm.server.url + cdm.base(),
            headers={"X-Auth-Token": cdm.tokens["alice"]},
            timeout=10,
        ) as client:
            barrier.wait()
            return send(client)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_racing_starts_and_creates_of_one_name(cdm_env: MakeCdm) -> None:
    cdm = cdm_env()
    cdm.define(definition("long", "/sleep", '{"seconds": 30}'))

    # Six starts at once: exactly one submission, five Cdm.0500.
    answers = race(cdm, 6, lambda client: client.put("/job/long/start"))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400, 400], [
        a.text for a in answers
    ]
    for answer in answers:
        if answer.status_code == 400:
            assert_cdm_error(answer, "Cdm.0500", "Job[long] is already running.")
    [winner] = [a.json()["submissions"][0] for a in answers if a.status_code == 200]
    assert [r["job_id"] for r in cdm.rows()] == [winner["submission-id"]]
    assert cdm.ok("PUT", "/job/long/stop") == {"validation-result": []}

    # Six creates of the same ten new names at once: one request creates them all, the others
    # are told a name already exists.
    names = [f"twin{i}" for i in range(10)]
    body = {"jobs": [definition(name, "/echo", "{}") for name in names]}
    answers = race(cdm, 6, lambda client: client.post("/job", json=body))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400, 400], [
        a.text for a in answers
    ]
    for answer in answers:
        if answer.status_code == 400:
            message = assert_cdm_error(answer, "Cdm.0104")
            assert re.fullmatch(r"Job\[twin\d\] already exists\.", message), message
    assert query(cdm.database_url, "SELECT name FROM cdm_jobs ORDER BY cdm_job_id") == [
        {"name": name} for name in ["long", *names]
    ]
    assert "Traceback" not in cdm.server.logs()


# -- 6. errors ----------------------------------------------------------------------------------


def test_errors_have_cdm_or_gateway_bodies(cdm_env: MakeCdm) -> None:
    cdm = cdm_env(bob=True, extra_args=("--cdm-cluster-id", CLUSTER))
    cdm.define(definition("withvar", "/echo", '{"region": "${region}"}'))

    # A missing variable: 400 naming it, and nothing created.
    for body in (None, {"variables": {}}, {"variables": {"other": "x"}}):
        message = assert_cdm_error(cdm.request("PUT", "/job/withvar/start", body=body), "Cdm.0014")
        assert "region" in message, message
    for body in ({"variables": "region=eu"}, {"variables": {"region": {"a": 1}}}, ["eu"]):
        assert_cdm_error(cdm.request("PUT", "/job/withvar/start", body=body), "Cdm.0014")
    assert_cdm_error(cdm.request("PUT", "/job/withvar/start", content=b"{not json"), "Cdm.0014")
    # A value that breaks the JSON template, and an endpoint variable naming no endpoint.
    broken = cdm.request("PUT", "/job/withvar/start", body={"variables": {"region": 'e"u'}})
    assert_cdm_error(broken, "Cdm.0014")
    cdm.define(definition("dynamic", "${ep}", "{}"))
    message = assert_cdm_error(
        cdm.request("PUT", "/job/dynamic/start", body={"variables": {"ep": "/no/such"}}), "Cdm.0014"
    )
    assert "/no/such" in message, message
    assert cdm.rows() == []
    assert query(cdm.database_url, "SELECT COUNT(*) AS n FROM cdm_submissions") == [{"n": 0}]

    # Authentication: the gateway's body.
    start = "/job/withvar/start"
    variables = {"variables": {"region": "eu"}}
    msg = assert_gateway_error(
        cdm.request("PUT", start, user=None, body=variables), "APIGW.0301", 401
    )
    assert "x-auth-token" in msg.lower()
    assert_gateway_error(cdm.request("GET", "/job/all", user=None), "APIGW.0301", 401)
    assert_gateway_error(cdm.request("GET", "/job/all", token=""), "APIGW.0301", 401)
    assert_gateway_error(
        cdm.request("PUT", start, token="jst_not-a-real-token", body=variables), "APIGW.0301", 401
    )
    # Bob's token is scoped to p2.
    assert_gateway_error(
        cdm.request("PUT", start, user="bob", project="p1", body=variables), "APIGW.0302", 403
    )
    assert_gateway_error(
        cdm.request("GET", "/job/withvar", user="bob", project="p1"), "APIGW.0302", 403
    )
    assert cdm.rows() == []

    # Unknown jobs: Cdm.0100 with all four keys.
    gone = "Job[ghost] doesn't exist."
    assert_cdm_error(cdm.request("GET", "/job/ghost/status"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("GET", "/job/ghost"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("PUT", "/job/ghost/start", body=variables), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("DELETE", "/job/ghost"), "Cdm.0100", gone)
    assert_cdm_error(
        cdm.request("PUT", "/job/ghost", body={"jobs": [definition("ghost", "/echo")]}),
        "Cdm.0100",
        gone,
    )
    assert_cdm_error(
        cdm.request("GET", "/submissions", params={"jname": "ghost"}), "Cdm.0100", gone
    )

    # Bad create bodies: 400 with CDM's body, never a 500.
    def create(body: Any = None, content: bytes | None = None) -> httpx.Response:
        return cdm.request("POST", "/job", body=body, content=content)

    assert_cdm_error(create(content=b'{"jobs": [}'), "Cdm.0014")
    assert_cdm_error(create(content=b""), "Cdm.0014")
    assert_cdm_error(create({"job": [definition("x", "/echo")]}), "Cdm.0014")
    assert_cdm_error(create({"jobs": []}), "Cdm.0014")
    assert_cdm_error(create({"jobs": definition("x", "/echo")}), "Cdm.0014")
    assert_cdm_error(create([definition("x", "/echo")]), "Cdm.0014")
    nameless = definition("x", "/echo")
    del nameless["name"]
    assert_cdm_error(create({"jobs": [nameless]}), "Cdm.0104")
    assert_cdm_error(create({"jobs": [definition("all", "/echo")]}), "Cdm.0104")
    assert_cdm_error(create({"jobs": [definition("x" * 241, "/echo")]}), "Cdm.0104")
    assert_cdm_error(create({"jobs": ["x"]}), "Cdm.0104")
    message = assert_cdm_error(create({"jobs": [definition("x", "/no/such")]}), "Cdm.0104")
    assert "/no/such" in message
    no_endpoint = definition("x", "/echo")
    no_endpoint["driver-config-values"] = config(("throttlingConfig", {"a.b": "1"}))
    assert_cdm_error(create({"jobs": [no_endpoint]}), "Cdm.0104")
    assert_cdm_error(create({"jobs": [definition("x", "/echo", job_type="BIG_JOB")]}), "Cdm.0104")
    binary = definition("x", "/echo")
    binary["driver-config-values"]["configs"][1]["inputs"].append(
        {"name": "jobstoreConfig.requestEncoding", "value": "binary"}
    )
    assert_cdm_error(create({"jobs": [binary]}), "Cdm.0104")
    not_configs = definition("x", "/echo")
    not_configs["from-config-values"] = "fromJobConfig.tableName=orders"
    assert_cdm_error(create({"jobs": [not_configs]}), "Cdm.0104")
    assert cdm.ok("GET", "/job/all")["total"] == 2, "no rejected create left a definition"

    # Duplicates: an existing name, or twice in one request; the whole create is refused.
    assert_cdm_error(
        create({"jobs": [definition("withvar", "/echo")]}),
        "Cdm.0104",
        "Job[withvar] already exists.",
    )
    assert_cdm_error(
        create({"jobs": [definition("fresh", "/echo"), definition("withvar", "/echo")]}),
        "Cdm.0104",
        "Job[withvar] already exists.",
    )
    assert_cdm_error(
        create({"jobs": [definition("twin", "/echo"), definition("twin", "/echo")]}), "Cdm.0104"
    )
    assert_cdm_error(cdm.request("GET", "/job/fresh"), "Cdm.0100", "Job[fresh] doesn't exist.")
    assert_cdm_error(cdm.request("GET", "/job/twin"), "Cdm.0100", "Job[twin] doesn't exist.")

    # Unknown paths and methods under /v1.1: the gateway's 404.
    assert_gateway_error(cdm.request("GET", "/links"), "APIGW.0101", 404)
    assert_gateway_error(cdm.request("PATCH", "/job/withvar"), "APIGW.0101", 404)
    assert_gateway_error(cdm.server.client.get("/v1.1/p1/clusters"), "APIGW.0101", 404)

    # This node is cluster c1: another cluster id is refused, and nothing is created there.
    for response in (
        cdm.request("GET", "/job/all", cluster="c2"),
        cdm.request("POST", "/job", cluster="c2", body={"jobs": [definition("x", "/echo")]}),
        cdm.request("PUT", "/job/withvar/start", cluster="c2", body=variables),
    ):
        assert_cdm_error(response, "Cdm.0001")
    assert query(cdm.database_url, "SELECT name, cluster_id FROM cdm_jobs ORDER BY name") == [
        {"name": "dynamic", "cluster_id": CLUSTER},
        {"name": "withvar", "cluster_id": CLUSTER},
    ]
    assert cdm.rows() == []

    # The good starts still work after all that.
    sub = cdm.start("withvar", {"region": "eu"})
    final, _ = cdm.wait_status("withvar", "SUCCEEDED")
    assert final["submission-id"] == sub["submission-id"]
    sub = cdm.start("dynamic", {"ep": "/echo"})
    cdm.wait_status("dynamic", "SUCCEEDED")
    assert query(
        cdm.database_url, "SELECT endpoint FROM jobs WHERE job_id = $1", sub["submission-id"]
    ) == [{"endpoint": "/echo"}]
    assert "Traceback" not in cdm.server.logs()


def test_config_group_without_inputs_is_accepted(cdm_env: MakeCdm) -> None:
    """A ConfigValues group may come without `inputs` (clients omit empty lists). The service
    reads such a group as having no inputs (config_inputs), so the create is accepted, stored
    as given, and runs: never an HTTP 500."""
    cdm = cdm_env()
    job = definition("no_inputs", "/echo", '{"a": 1}')
    job["driver-config-values"]["configs"].append({"name": "transformConfig"})
    response = cdm.request("POST", "/job", body={"jobs": [job]})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "no_inputs"
    stored = cdm.ok("GET", "/job/no_inputs")["jobs"][0]
    assert stored["driver-config-values"] == job["driver-config-values"]
    sub = cdm.start("no_inputs")
    final, _ = cdm.wait_status("no_inputs", "SUCCEEDED")
    assert final["submission-id"] == sub["submission-id"]
    assert "Traceback" not in cdm.server.logs()


def test_name_filter_matches_the_same_on_every_database(cdm_env: MakeCdm) -> None:
    """`filter` is CDM's fuzzy name filter. SQLite's LIKE ignores ASCII case and PostgreSQL's
    does not, so the same request must not find different jobs by database: a fuzzy filter
    ignores case (what SQLite answers today)."""
    cdm = cdm_env()
    cdm.define(definition("Daily_Orders", "/echo", "{}"), definition("weekly", "/echo", "{}"))
    for text in ("Daily", "daily", "DAILY_orders"):
        listed = cdm.ok("GET", "/job/all", params={"filter": text})
        assert (listed["total"], [j["name"] for j in listed["jobs"]]) == (1, ["Daily_Orders"]), text


# -- 7. projects never see each other's jobs ----------------------------------------------------


def test_projects_are_isolated(cdm_env: MakeCdm) -> None:
    cdm = cdm_env(bob=True)
    cdm.define(definition("shared", "/sleep", '{"seconds": ${secs}}'), user="alice")
    cdm.define(definition("alice_only", "/echo", "{}"), user="alice")
    cdm.define(definition("shared", "/echo", '{"who": "bob"}'), user="bob")

    mine = cdm.ok("GET", "/job/all")
    assert (mine["total"], sorted(j["name"] for j in mine["jobs"])) == (2, ["alice_only", "shared"])
    assert {j["creation-user"] for j in mine["jobs"]} == {"alice"}
    theirs = cdm.ok("GET", "/job/all", user="bob")
    assert (theirs["total"], [j["name"] for j in theirs["jobs"]]) == (1, ["shared"])
    assert theirs["jobs"][0]["creation-user"] == "bob"
    endpoint = config_inputs(theirs["jobs"][0]["driver-config-values"])["jobstoreConfig.endpoint"]
    assert endpoint == "/echo"
    gone = "Job[alice_only] doesn't exist."
    assert_cdm_error(cdm.request("GET", "/job/alice_only", user="bob"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("PUT", "/job/alice_only/start", user="bob"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("DELETE", "/job/alice_only", user="bob"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("GET", "/job/alice_only/status", user="bob"), "Cdm.0100", gone)
    assert_cdm_error(
        cdm.request("GET", "/submissions", user="bob", params={"jname": "alice_only"}),
        "Cdm.0100",
        gone,
    )
    modify = {"jobs": [definition("alice_only", "/echo", "{}")]}
    assert_cdm_error(
        cdm.request("PUT", "/job/alice_only", user="bob", body=modify), "Cdm.0100", gone
    )

    # Alice's "shared" runs; Bob's "shared" starts anyway: a separate job.
    alice_sub = cdm.start("shared", {"secs": "30"})
    bob_sub = cdm.start("shared", user="bob")
    assert alice_sub["submission-id"] != bob_sub["submission-id"]
    assert bob_sub["creation-user"] == "bob"
    bob_final, _ = cdm.wait_status("shared", "SUCCEEDED", user="bob")
    assert bob_final["submission-id"] == bob_sub["submission-id"]
    assert cdm.status("shared")["submission-id"] == alice_sub["submission-id"]
    assert cdm.status("shared")["status"] in ("BOOTING", "RUNNING")
    bob_history = cdm.history("shared", user="bob")
    assert bob_history["total"] == 1
    assert [s["submission-id"] for s in bob_history["submissions"]] == [bob_sub["submission-id"]]
    rows = query(cdm.database_url, "SELECT job_id, created_by, project FROM jobs ORDER BY job_id")
    assert rows == [
        {"job_id": alice_sub["submission-id"], "created_by": "alice", "project": "p1"},
        {"job_id": bob_sub["submission-id"], "created_by": "bob", "project": "p2"},
    ]

    # Bob's stop finds nothing running in p2; Alice's submission keeps running.
    warned = cdm.ok("PUT", "/job/shared/stop", user="bob")
    assert warned == {
        "validation-result": [{"message": "Job[shared] is not running.", "status": "WARNING"}]
    }
    assert cdm.status("shared")["status"] in ("BOOTING", "RUNNING")
    assert cdm.ok("PUT", "/job/shared/stop") == {"validation-result": []}
    cdm.wait_status("shared", "FAILED", timeout=5)
    # Bob deleting his "shared" leaves Alice's.
    assert cdm.ok("DELETE", "/job/shared", user="bob") == {}
    assert cdm.ok("GET", "/job/shared")["jobs"][0]["creation-user"] == "alice"
    assert cdm.ok("GET", "/job/all", user="bob")["total"] == 0


# -- 8 and 9. query, list, modify, delete; delete after the run ---------------------------------


def test_query_list_modify_delete_and_delete_after_run(cdm_env: MakeCdm) -> None:
    cdm = cdm_env()
    before = now_ms()
    weekly = definition("weekly", "/echo", '{"v": "one"}')
    cdm.define(
        definition("daily_orders", "/echo", "{}"),
        definition("dailyXorders", "/echo", "{}"),
        weekly,
    )
    cdm.define(definition("bulk", "/echo", "{}", job_type="BATCH_JOB"))
    after = now_ms()

    found = cdm.ok("GET", "/job/weekly")
    assert (found["total"], found["page_no"], found["page_size"]) == (1, 1, 10)
    [job] = found["jobs"]
    for key, value in weekly.items():
        assert job[key] == value, key
    assert (job["job_type"], job["type"]) == ("NORMAL_JOB", "NORMAL_JOB")
    assert job["creation-user"] == job["update-user"] == "alice"
    assert before <= job["creation-date"] == job["update-date"] <= after
    assert isinstance(job["id"], int)

    def names(**params: Any) -> tuple[int, set[str]]:
        answer = cdm.ok("GET", "/job/all", params=params)
        listed = [j["name"] for j in answer["jobs"]]
        assert len(listed) == len(set(listed))
        return answer["total"], set(listed)

    normal = {"daily_orders", "dailyXorders", "weekly"}
    assert names() == (3, normal)  # only NORMAL_JOB without jobType
    assert names(jobType="NORMAL_JOB") == (3, normal)
    assert names(jobType="BATCH_JOB") == (1, {"bulk"})
    assert names(filter="daily") == (2, {"daily_orders", "dailyXorders"})
    assert names(filter="y_o") == (1, {"daily_orders"})  # "_" is not a wildcard
    assert names(filter="%") == (0, set())
    assert names(filter="eekl") == (1, {"weekly"})
    assert names(filter="bulk") == (0, set())
    assert names(filter="bulk", jobType="BATCH_JOB") == (1, {"bulk"})
    first = cdm.ok("GET", "/job/all", params={"page_no": 1, "page_size": 2})
    second = cdm.ok("GET", "/job/all", params={"page_no": 2, "page_size": 2})
    assert (first["total"], first["page_no"], first["page_size"], len(first["jobs"])) == (
        3,
        1,
        2,
        2,
    )
    assert (second["total"], second["page_no"], second["page_size"], len(second["jobs"])) == (
        3,
        2,
        2,
        1,
    )
    assert {j["name"] for j in first["jobs"] + second["jobs"]} == normal
    assert_cdm_error(cdm.request("GET", "/job/all", params={"page_no": "0"}), "Cdm.0010")

    # Modify changes what the next start runs.
    sub = cdm.start("weekly")
    cdm.wait_status("weekly", "SUCCEEDED")
    changed = definition("weekly", "/echo", '{"v": "${v}"}')
    assert cdm.ok("PUT", "/job/weekly", body={"jobs": [changed]}) == {"validation-result": []}
    job = cdm.ok("GET", "/job/weekly")["jobs"][0]
    assert job["driver-config-values"] == changed["driver-config-values"]
    assert job["update-date"] >= job["creation-date"]
    again = cdm.start("weekly", {"v": "two"})
    cdm.wait_status("weekly", "SUCCEEDED")
    requests = {
        r["job_id"]: json.loads(r["request_text"])["v"]
        for r in query(cdm.database_url, "SELECT job_id, request_text FROM jobs")
    }
    assert requests == {sub["submission-id"]: "one", again["submission-id"]: "two"}

    # The name in the body may be left out, but cannot differ; bad bodies change nothing.
    nameless = definition("weekly", "/echo", '{"v": "three"}')
    del nameless["name"]
    assert cdm.ok("PUT", "/job/weekly", body={"jobs": [nameless]}) == {"validation-result": []}
    renamed = definition("monthly", "/echo", "{}")
    assert_cdm_error(cdm.request("PUT", "/job/weekly", body={"jobs": [renamed]}), "Cdm.0095")
    bad = definition("weekly", "/no/such", "{}")
    assert_cdm_error(cdm.request("PUT", "/job/weekly", body={"jobs": [bad]}), "Cdm.0104")
    assert_cdm_error(cdm.request("PUT", "/job/weekly", body={"jobs": []}), "Cdm.0014")
    job = cdm.ok("GET", "/job/weekly")["jobs"][0]
    assert config_inputs(job["driver-config-values"])["jobstoreConfig.request"] == '{"v": "three"}'
    assert_cdm_error(cdm.request("GET", "/job/monthly"), "Cdm.0100")

    # Delete.
    assert cdm.ok("DELETE", "/job/weekly") == {}
    gone = "Job[weekly] doesn't exist."
    assert_cdm_error(cdm.request("GET", "/job/weekly"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("DELETE", "/job/weekly"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("PUT", "/job/weekly/start"), "Cdm.0100", gone)
    assert names() == (2, {"daily_orders", "dailyXorders"})
    assert len(cdm.rows()) == 2, "deleting a definition leaves its jobs"

    # isDeleteJob: schedulerConfig.disposableType other than NONE deletes the definition once
    # the run has ended; the run's status and history stay.
    cdm.define(
        definition("disposable", "/sleep", '{"seconds": 1.5}', disposable="DELETE_AFTER_SUCCEED"),
        definition("kept", "/sleep", '{"seconds": 0}', disposable="NONE"),
    )

    sub = cdm.start("disposable")
    assert sub["isDeleteJob"] is True
    # Still there while it runs.
    assert cdm.ok("GET", "/job/disposable")["jobs"][0]["name"] == "disposable"
    final, seen = cdm.wait_status("disposable", "SUCCEEDED")
    assert all(view["isDeleteJob"] is True for view in seen)
    assert_succeeded(final)
    assert final["submission-id"] == sub["submission-id"]

    gone = "Job[disposable] doesn't exist."
    assert_cdm_error(cdm.request("GET", "/job/disposable"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("PUT", "/job/disposable/start"), "Cdm.0100", gone)
    assert_cdm_error(cdm.request("DELETE", "/job/disposable"), "Cdm.0100", gone)
    assert names() == (3, {"daily_orders", "dailyXorders", "kept"})
    # The run itself is still reported, and its job row remains.
    assert cdm.status("disposable") == final
    history = cdm.history("disposable")
    assert (history["total"], history["submissions"]) == (1, [final])
    statuses = {r["job_id"]: r["status"] for r in cdm.rows()}
    assert statuses[sub["submission-id"]] == "done" and len(statuses) == 3

    kept = cdm.start("kept")
    assert kept["isDeleteJob"] is False
    cdm.wait_status("kept", "SUCCEEDED")
    assert cdm.ok("GET", "/job/kept")["jobs"][0]["name"] == "kept"
    assert cdm.status("kept")["isDeleteJob"] is False
