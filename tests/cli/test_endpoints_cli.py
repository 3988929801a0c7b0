"""`jobstore endpoints` against a real `jobstore serve` process, over the REST API.

The command runs in-process (`jobstore.cli.main.main` with capsys), but for the exit codes and
the one-line errors on a pipe, which run the installed `jobstore` script as a child. The nodes
run the end-to-end endpoints (tests/support/e2e_endpoints.py, Python) and the HTTP endpoints of
an endpoints file; one also sends every other name to an upstream Kinetica.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import Cli, Run, clear_cli_env, run_child, run_main
from tests.support.e2e import Server, clean_env, free_port, run_cli_ok

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ONLY_SQLITE = pytest.mark.parametrize("dialect", ["sqlite"])
PYTHON_ENDPOINTS = [
    "/e2e/add",
    "/echo",
    "/fail",
    "/limited",
    "/once",
    "/record",
    "/sleep",
    "/slow_first",
]
ENDPOINTS_FILE = """\
[endpoints."/thumbs"]
url = "http://media.internal:8080/v2/thumbnails?size=${env:THUMB_SIZE}"
headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}" }
description = "make a thumbnail [small]"

[endpoints."/notify"]
url = "https://hooks.internal/notify"
method = "PUT"
mode = "callback"
"""
SECRETS = {"MEDIA_TOKEN": "tok-never-shown", "THUMB_SIZE": "size-never-shown"}
Start = Callable[..., Server]  # (*serve_args) -> a started node


@pytest.fixture
def start(database_url: str, tmp_path: Path) -> Iterator[Start]:
    """start(*extra_args): a started node on the test database with the endpoints file; every
    one is killed at teardown (its logs printed)."""
    path = tmp_path / "endpoints.toml"
    path.write_text(ENDPOINTS_FILE)
    started: list[Server] = []

    def make(*extra: str, node_id: str = "node-1") -> Server:
        server = Server(
            database_url,
            tmp_path,
            node_id=node_id,
            extra_args=["--endpoints-file", str(path), *extra],
            env={**clean_env(), **SECRETS},
        )
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.cleanup()
            print(f"\n===== logs of {server.node_id} =====\n{server.logs()}")


@pytest.fixture
def endpoints(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`jobstore endpoints ARGS` in-process, with no JOBSTORE_* variable (give --url)."""
    clear_cli_env(monkeypatch)

    def run(*args: str) -> Run:
        return run_main(capsys, ["endpoints", *args])

    return run


def rows(out: str) -> tuple[list[str], dict[str, tuple[str, str, str]], list[str]]:
    """The table's header; its rows by name: (kind, upstream, description), the description's
    spaces squeezed; the lines after it."""
    lines = out.splitlines()
    header = lines[0].split()
    assert set(lines[1]) == {"─"}, lines[1]
    body = [line for line in lines[2:] if line.startswith("/")]
    found = {}
    for line in body:
        name, kind, upstream, *description = line.split()
        found[name] = (kind, upstream, " ".join(description))
    return header, found, lines[2 + len(body) :]


# -- the listing, on SQLite and PostgreSQL -------------------------------------------------------


def test_lists_each_endpoint_with_its_kind_upstream_and_description(
    start: Start, endpoints: Cli
) -> None:
    node = start("--kinetica-upstream", "http://gpudb.internal:9191")
    out = endpoints("--url", node.url).ok().out
    header, by_name, after = rows(out)
    assert header == ["NAME", "KIND", "UPSTREAM", "DESCRIPTION"]
    assert list(by_name) == sorted([*PYTHON_ENDPOINTS, "/notify", "/thumbs"])
    # The host only, never the path or query; brackets shown as they are (no markup).
    assert by_name["/thumbs"] == ("http", "media.internal:8080", "make a thumbnail [small]")
    assert by_name["/notify"] == ("http", "hooks.internal", "PUT hooks.internal (callback)")
    sleep = by_name["/sleep"]
    assert sleep[:2] == ("python", "-") and sleep[2].startswith("Sleep for `seconds`"), sleep
    assert {by_name[name][:2] for name in PYTHON_ENDPOINTS} == {("python", "-")}
    assert after == ["every other name: kinetica-upstream, upstream gpudb.internal:9191"]
    for secret in SECRETS.values():
        assert secret not in out
    assert "v2/thumbnails" not in out

    # --json: the node's listing as it sent it.
    shown = json.loads(endpoints("--url", node.url, "--json").ok().out)
    assert shown == httpx.get(f"{node.url}/api/v1/endpoints", timeout=10).json()
    assert shown["other_names"] == {"kind": "kinetica-upstream", "upstream": "gpudb.internal:9191"}
    assert [item["name"] for item in shown["items"]] == list(by_name)


@ONLY_SQLITE
def test_no_line_for_other_names_when_they_are_refused(start: Start, endpoints: Cli) -> None:
    node = start()
    out = endpoints("--url", node.url).ok().out
    _, by_name, after = rows(out)
    assert "/thumbs" in by_name and after == []
    assert "other name" not in out
    assert json.loads(endpoints("--url", node.url, "--json").ok().out)["other_names"] is None


# -- on a pipe, as a child: the node from JOBSTORE_URL, mistakes and their exit codes -------------


@ONLY_SQLITE
def test_on_a_pipe_and_its_mistakes(start: Start, endpoints: Cli) -> None:
    node = start()
    piped = run_child("endpoints", url=node.url).ok()
    assert "\x1b[" not in piped.out, "no colours on a pipe"
    _, by_name, _ = rows(piped.out)
    assert by_name["/thumbs"][:2] == ("http", "media.internal:8080")
    # One line per endpoint, however long its description: never folded on a pipe.
    assert len(piped.out.splitlines()) == 2 + len(PYTHON_ENDPOINTS) + 2

    down = run_child("endpoints", url=f"http://127.0.0.1:{free_port()}")
    assert (down.code, down.out) == (3, "")
    assert down.err.startswith("jobstore: cannot reach http://127.0.0.1:")
    assert len(down.err.splitlines()) == 1
    wrong = run_child("endpoints", url="ftp://127.0.0.1:1")
    assert (wrong.code, wrong.out) == (2, "")
    assert wrong.err.startswith("jobstore: --url must start with http:// or https://")
    with pytest.raises(SystemExit) as refused:
        endpoints("--url", node.url, "list")
    assert refused.value.code == 2


@ONLY_SQLITE
def test_under_auth_it_needs_a_user_or_a_token(
    start: Start, database_url: str, tmp_path: Path
) -> None:
    db = ("--database-url", database_url)
    run_cli_ok(["db", "upgrade", *db], tmp_path)
    run_cli_ok(["users", "add", "alice", "--password-stdin", *db], tmp_path, stdin="pw-a\n")
    created = run_cli_ok(["tokens", "create", "--user", "alice", *db], tmp_path)
    token = created.stdout.strip().splitlines()[-1]
    node = start("--auth", "required")

    anonymous = run_child("endpoints", url=node.url)
    assert (anonymous.code, anonymous.out) == (1, "")
    assert anonymous.err.startswith("jobstore: authentication required")
    assert anonymous.err.rstrip().endswith("(set JOBSTORE_TOKEN, or use --token or --user)")
    wrong = run_child("endpoints", url=node.url, env={"JOBSTORE_TOKEN": "jst_wrong"})
    assert wrong.code == 1 and "set JOBSTORE_TOKEN" not in wrong.err
    for env in ({"JOBSTORE_USER": "alice", "JOBSTORE_PASSWORD": "pw-a"}, {"JOBSTORE_TOKEN": token}):
        _, by_name, _ = rows(run_child("endpoints", url=node.url, env=env).ok().out)
        assert "/thumbs" in by_name


def test_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_main(capsys, ["endpoints", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: jobstore endpoints ")
    assert "jobstore endpoints --json" in text.split("examples:")[1]
    for option in ("--url", "--token", "--user", "--json", "--request-timeout"):
        assert option in text
    leaked = [n for n in ("cli/", ".py", "rich", "argparse", "jobstore.client") if n in text]
    assert not leaked, leaked
    with pytest.raises(SystemExit):
        run_main(capsys, ["--help"])
    assert "endpoints" in capsys.readouterr().out
