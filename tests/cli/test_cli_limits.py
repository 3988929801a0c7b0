"""`jobstore limits ...` against a real `jobstore serve` process, over the REST API.

The commands run in-process (`jobstore.cli.main.main` with capsys), but for the exit codes and
the one-line errors on a pipe, which run the installed `jobstore` script as a child. The node
runs its jobs: /limited jobs (tests/support/e2e_endpoints.py, concurrency_limit=2) of one key
start as the key's limit lets them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Cli, Run, clear_cli_env, run_child, run_main, running_node
from tests.support.e2e import Server, free_port, run_cli_ok, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ONLY_SQLITE = pytest.mark.parametrize("dialect", ["sqlite"])


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A started node on the test database (the dialect's), killed at teardown."""
    with running_node(database_url, tmp_path) as server:
        yield server


@pytest.fixture
def limits(
    node: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """`jobstore limits ARGS` in-process against `node`, with no other JOBSTORE_* variable."""
    clear_cli_env(monkeypatch)
    monkeypatch.setenv("JOBSTORE_URL", node.url)

    def run(*args: str) -> Run:
        return run_main(capsys, ["limits", *args])

    return run


def listed(limits: Cli) -> dict[str, dict[str, Any]]:
    page = json.loads(limits("list", "--json").ok().out)
    return {doc["key"]: doc for doc in page["limits"]}


def counts(limits: Cli, key: str) -> tuple[int, int | None, int, str | None]:
    doc = listed(limits).get(key, {})
    return doc.get("running", 0), doc.get("max_running"), doc.get("queued", 0), doc.get("source")


def child(*args: str, url: str, env: dict[str, str] | None = None) -> Run:
    """The installed `jobstore limits ARGS` as a child process, on a pipe."""
    return run_child("limits", *args, url=url, env=env)


def limited_jobs(server: Server, key: str, count: int, tmp_path: Path) -> None:
    """`count` /limited jobs of `key` that each run 30 s (the node is killed before)."""
    request = {"path": str(tmp_path / f"{key}.log"), "seconds": 30}
    for _ in range(count):
        server.create_job("/limited", request, options={"concurrency_key": key})


# -- the happy path, on SQLite and PostgreSQL ---------------------------------------------------


def test_list_set_and_delete(node: Server, limits: Cli, tmp_path: Path) -> None:
    assert limits("list").ok().out == "no concurrency keys\n"
    assert (
        limits("set", "acme", "3").ok().out == "limit of key acme set to 3; 0 running, 0 queued\n"
    )

    # Three jobs of an endpoint with concurrency_limit=2: two run, one waits.
    limited_jobs(node, "cust-1", 3, tmp_path)
    wait_for("two cust-1 jobs running", lambda: counts(limits, "cust-1") == (2, 2, 1, "endpoint"))
    table = limits("list").ok().out.splitlines()
    assert table[0].split() == ["KEY", "RUNNING", "/", "LIMIT", "QUEUED", "SOURCE"]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:]}
    assert rows == {
        "acme": ["0", "/", "3", "0", "named"],
        "cust-1": ["2", "/", "2", "1", "endpoint"],
    }

    # A named limit over the endpoint's: the third starts.
    raised = limits("set", "cust-1", "3").ok().out
    assert raised.startswith("limit of key cust-1 set to 3; 2 running, ")
    wait_for("three cust-1 jobs running", lambda: counts(limits, "cust-1") == (3, 3, 0, "named"))

    held = limits("set", "tenant:7/eu", "0").ok()
    assert held.out == (
        "limit of key tenant:7/eu set to 0 (its jobs are held until it is raised); "
        "0 running, 0 queued\n"
    )
    doc = json.loads(limits("set", "50% off", "5", "--json").ok().out)
    assert (doc["key"], doc["max_running"], doc["source"]) == ("50% off", 5, "named")
    assert doc["links"]["self"] == "/api/v1/limits/50%25%20off"
    rows = {line.split()[0]: line for line in limits("list").ok().out.splitlines()[2:]}
    assert rows["tenant:7/eu"].split()[1:] == ["0", "/", "0", "0", "named"]

    assert limits("delete", "acme").ok().out == "named limit of key acme removed\n"
    assert json.loads(limits("delete", "tenant:7/eu", "--json").ok().out) == {
        "deleted": "tenant:7/eu"
    }
    # cust-1 falls back to its endpoint's limit (the running jobs go on).
    limits("delete", "cust-1").ok()
    assert counts(limits, "cust-1") == (3, 2, 0, "endpoint")
    assert list(listed(limits)) == ["50% off", "cust-1"]


# -- mistakes ----------------------------------------------------------------------------------


@ONLY_SQLITE
def test_mistakes_are_one_line_with_their_exit_code(node: Server, limits: Cli) -> None:
    missing = child("delete", "nope", url=node.url)
    assert (missing.code, missing.out) == (1, "")
    assert missing.err == (
        "jobstore: Concurrency limit not found: no concurrency limit is set for key 'nope'\n"
    )
    too_many = limits("set", "acme", "1000001")
    assert too_many.code == 1
    assert too_many.err == (
        "jobstore: The request is not valid: max_running: must be from 0 to 1000000, got 1000001\n"
    )
    dots = limits("set", "..", "1")
    assert dots.code == 1 and "key: '.' and '..' cannot be a key in a path" in dots.err
    assert listed(limits) == {}, "nothing was set"
    down = child("list", url=f"http://127.0.0.1:{free_port()}")
    assert down.code == 3 and down.err.startswith("jobstore: cannot reach http://127.0.0.1:")

    # What argparse refuses is a usage error: a count that is no whole number from 0, no count.
    for args in (["set", "acme", "-1"], ["set", "acme", "two"], ["set", "acme"], ["delete"]):
        with pytest.raises(SystemExit) as refused:
            limits(*args)
        assert refused.value.code == 2, args


@ONLY_SQLITE
def test_only_an_admin_sets_and_removes(database_url: str, tmp_path: Path) -> None:
    db = ("--database-url", database_url)
    run_cli_ok(["db", "upgrade", *db], tmp_path)
    run_cli_ok(["users", "add", "alice", "--password-stdin", *db], tmp_path, stdin="pw-a\n")
    run_cli_ok(
        ["users", "add", "ops", "--admin", "--password-stdin", *db], tmp_path, stdin="pw-o\n"
    )
    server = Server(database_url, tmp_path, extra_args=["--auth", "required"])
    try:
        server.start()
        alice = {"JOBSTORE_USER": "alice", "JOBSTORE_PASSWORD": "pw-a"}
        ops = {"JOBSTORE_USER": "ops", "JOBSTORE_PASSWORD": "pw-o"}
        anonymous = child("list", url=server.url)
        assert anonymous.code == 1 and anonymous.err.startswith("jobstore: authentication required")
        refused = child("set", "acme", "2", url=server.url, env=alice)
        assert refused.code == 1
        assert refused.err.startswith("jobstore: Not allowed: only administrators set or remove")
        assert child("set", "acme", "2", url=server.url, env=ops).code == 0
        shown = child("list", "--json", url=server.url, env=alice)
        [doc] = json.loads(shown.out)["limits"]
        assert (doc["key"], doc["max_running"], doc["updated_by"]) == ("acme", 2, "ops")
        assert child("delete", "acme", url=server.url, env=alice).code == 1
        assert child("delete", "acme", url=server.url, env=ops).out == (
            "named limit of key acme removed\n"
        )
    finally:
        server.cleanup()
