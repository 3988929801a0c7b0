"""`jobstore jobs ...` against a real `jobstore serve` process, over the REST API.

Most calls run the CLI in-process (`jobstore.cli.main.main` with capsys: no second of start-up per
call); those where the process boundary matters (exit codes, no traceback, variables, stdin, the
output of `wait` on a pipe) run the installed `jobstore` script as a child.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jobstore.cli.jobs import _counts, _duration
from jobstore.core.accounts import Authenticator
from jobstore.store import Database
from tests.support.cli import Run, clear_cli_env, run_child, run_main, running_node
from tests.support.e2e import Server, free_port, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ONLY_SQLITE = pytest.mark.parametrize("dialect", ["sqlite"])
ONLY_POSTGRES = pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
Jobs = Callable[..., Run]


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A started node on the test database (the dialect's), killed at teardown."""
    with running_node(database_url, tmp_path) as server:
        yield server


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Jobs:
    """`jobstore jobs ARGS` in-process, with no JOBSTORE_* variables but those of `env`."""
    clear_cli_env(monkeypatch)

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            return run_main(capsys, ["jobs", *args])

    return run


@pytest.fixture
def jobs(node: Server, cli: Jobs) -> Jobs:
    """`jobstore jobs ARGS` in-process, pointed at `node` by JOBSTORE_URL."""
    return functools.partial(cli, env={"JOBSTORE_URL": node.url})


def jobs_process(*args: str, url: str, env: dict[str, str] | None = None, stdin: str = "") -> Run:
    """The installed `jobstore jobs ARGS` as a child process, on a pipe."""
    return run_child("jobs", *args, url=url, env=env, stdin=stdin)


def created_id(run: Run) -> int:
    match = re.search(r"^(?:created )?job (\d+), tag ", run.ok().out, re.MULTILINE)
    assert match, run.out
    return int(match.group(1))


# -- the happy path, on SQLite and PostgreSQL ---------------------------------------------------


def test_create_list_show_wait(node: Server, jobs: Jobs) -> None:
    created = jobs("create", "/sleep", "--data", '{"seconds": 1}', "--tag", "nap-1")
    job_id = created_id(created)
    assert created.out == f"created job {job_id}, tag nap-1\n"
    again = jobs("create", "/sleep", "--data", '{"seconds": 1}', "--tag", "nap-1").ok()
    assert again.out == f"job {job_id}, tag nap-1 (it existed: same tag, same request)\n"

    listed = jobs("list").ok()
    header, row = listed.out.splitlines()[0:3:2]
    assert header.split() == ["ID", "TAG", "ENDPOINT", "STATUS", "PROGRESS", "CREATED", "DURATION"]
    assert row.split()[:3] == [str(job_id), "nap-1", "/sleep"]
    assert row.split()[3] in ("queued", "running", "done")
    assert re.search(
        r"^jobs: 0 scheduled, \d+ queued, \d+ running, 0 done, 0 error, 0 cancelled$",
        listed.out,
        re.M,
    )
    page = json.loads(jobs("list", "--json", "--endpoint", "/sleep").ok().out)
    assert [(j["id"], j["tag"]) for j in page["items"]] == [(job_id, "nap-1")]

    by_id, by_tag = jobs("show", str(job_id)).ok(), jobs("show", "nap-1").ok()
    assert by_id.out.splitlines()[:3] == by_tag.out.splitlines()[:3]
    assert re.search(rf"^id +{job_id}$", by_id.out, re.M)
    assert re.search(r"^endpoint +/sleep$", by_id.out, re.M)
    assert 'request:\n{\n  "seconds": 1\n}' in by_id.out

    # On a pipe: no bar, one final line, then the result.
    waited = jobs_process("wait", str(job_id), url=node.url).ok()
    assert re.fullmatch(
        rf'job {job_id} \(tag nap-1\) done in \d+\.\ds\nresult:\n{{\n  "slept": 1\.0\n}}\n',
        waited.out,
    ), waited.out
    assert waited.err == ""

    shown = json.loads(jobs("show", "nap-1", "--json").ok().out)
    assert (shown["id"], shown["status"], shown["progress"]) == (job_id, "done", 100)
    assert shown["response"]["json"] == {"slept": 1.0}
    assert "done" in jobs("list", "--status", "done").ok().out


# -- wait's outcomes, cancel --------------------------------------------------------------------


@ONLY_SQLITE
def test_wait_exit_codes_and_cancel(node: Server, jobs: Jobs) -> None:
    failed = jobs("create", "/fail", "--data", '{"message": "boom [x]"}', "--wait")
    assert failed.code == 1, failed
    assert re.search(r"^job \d+ \(tag \S+\) error in \S+: boom \[x\]$", failed.out, re.M)

    echoed = json.loads(
        jobs("create", "/echo", "--data", '{"x": [1]}', "--wait", "--json").ok().out
    )
    assert echoed["status"] == "done" and echoed["response"]["json"] == {"x": [1]}

    long_id = created_id(jobs("create", "/sleep", "--data", '{"seconds": 60}', "--tag", "long"))
    timed_out = jobs_process("wait", "long", "--timeout", "0.5", url=node.url)
    assert timed_out.code == 4, timed_out
    assert re.fullmatch(
        rf"jobstore: job {long_id} is still (queued|running) after 0.5s\n", timed_out.err
    )

    cancelled = jobs("cancel", str(long_id)).ok()
    assert re.fullmatch(rf"job {long_id}: (cancelled|cancel requested)\n", cancelled.out)
    ended = jobs("wait", "long", "--timeout", "30")
    assert ended.code == 1, ended
    assert f"job {long_id} (tag long) cancelled in" in ended.out

    again = jobs("cancel", str(long_id), "999999")
    assert again.code == 1 and again.out == ""
    lines = again.err.splitlines()
    assert lines[0].startswith(f"jobstore: job {long_id}: Job already finished: "), again.err
    assert lines[1].startswith("jobstore: job 999999: Job not found: "), again.err

    first = jobs("list", "--limit", "2").ok()
    assert re.search(r"^more: --before \d+ for the next page, or --all$", first.out, re.M)
    every = [
        j["id"] for j in json.loads(jobs("list", "--limit", "2", "--all", "--json").out)["items"]
    ]
    assert every == sorted(set(every), reverse=True) and len(every) == 3

    removed = jobs("create", "/echo", "--data", "{}", "--remove-on-complete", "--wait").ok()
    assert re.search(r"^job \d+ .*done", removed.out, re.M), removed.out
    gone = jobs("show", str(created_id(removed)))
    assert gone.code == 1 and gone.err.startswith("jobstore: Job removed: "), gone

    binary = jobs("create", "/echo", "--data-base64", "AAEC", "--wait").ok()
    assert binary.out.endswith("result (binary, 3 bytes):\nAAEC\n"), binary.out


# -- the engine: options, retry, attempts, bulk; on SQLite and PostgreSQL -----------------------


def test_create_with_engine_options(node: Server, jobs: Jobs) -> None:
    options = ["--priority", "7", "--max-attempts", "4", "--retry-errors", "--backoff", "30s"]
    made = jobs(
        "create", "/echo", "--tag", "later", "--delay", "1h", *options, "--run-timeout", "2m"
    )
    assert re.fullmatch(
        r"created job \d+, tag later, scheduled for \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n", made.ok().out
    ), made.out
    shown = jobs("show", "later").ok().out.splitlines()
    for line in ("attempt     0 of 4", "priority    7", "retry       on error, backoff 30.0s"):
        assert line in shown, shown
    assert "timeout     2m00s" in shown and "status      scheduled (0%)" in shown
    doc = json.loads(jobs("show", "later", "--json").ok().out)
    assert (doc["status"], doc["priority"], doc["max_attempts"], doc["retry_errors"]) == (
        "scheduled",
        7,
        4,
        True,
    )
    assert (doc["backoff_seconds"], doc["timeout_seconds"]) == (30.0, 120.0)
    delay = datetime.fromisoformat(doc["run_at"]) - datetime.fromisoformat(doc["created_at"])
    assert timedelta(minutes=59) < delay < timedelta(minutes=61), delay
    dated = jobs("create", "/echo", "--run-at", "2036-01-02T05:04:05+02:00", "--no-retry-errors")
    assert json.loads(jobs("show", str(created_id(dated)), "--json").out)["run_at"] == (
        "2036-01-02T03:04:05Z"
    )
    assert "jobs: 2 scheduled, 0 queued, 0 running," in jobs("list").ok().out
    old = jobs("list", "--status", "scheduled", "--created-before", "2000-01-01T00:00:00Z")
    assert old.ok().out.startswith("no jobs\n")
    cancelled = jobs("cancel", "--status", "scheduled", "--endpoint", "/echo").ok()
    assert cancelled.out == "2 jobs matched: 2 cancelled\n"
    answer = json.loads(jobs("cancel", "--endpoint", "/nowhere", "--json").ok().out)
    assert answer == {"action": "cancel", "matched": 0, "outcomes": {}, "more": False}


def test_retry_and_attempts(node: Server, jobs: Jobs) -> None:
    failed = created_id(jobs("create", "/fail", "--data", '{"message": "boom"}', "--tag", "flaky"))
    assert jobs("wait", "flaky").code == 1
    table = jobs("attempts", "flaky").ok().out.splitlines()
    assert table[0].split() == ["ATTEMPT", "NODE", "STARTED", "DURATION", "OUTCOME", "ERROR"]
    assert len(table) == 3 and table[2].split()[:2] == ["1", "node-1"], table
    assert table[2].split()[-2:] == ["error", "boom"], table
    retried = jobs("retry", str(failed)).ok()
    assert re.fullmatch(rf"job {failed}: retried, now (queued|running|error)\n", retried.out)
    assert jobs("wait", "flaky").code == 1
    runs = json.loads(jobs("attempts", str(failed), "--json").ok().out)
    assert [(a["attempt"], a["outcome"], a["error"]) for a in runs] == [
        (1, "error", "boom"),
        (2, "error", "boom"),
    ]

    cancelled = created_id(jobs("create", "/echo", "--delay", "1h"))
    assert jobs("cancel", str(cancelled)).ok()
    every = jobs("retry", "--status", "error,cancelled", "--created-after", "2000-01-01T00:00Z")
    assert every.ok().out == "2 jobs matched: 2 retried\n"
    assert jobs("wait", str(cancelled)).ok(), "retried, it runs at once"
    assert jobs("retry", "--endpoint", "/nowhere").ok().out == "no job matched\n"
    future = jobs("retry", "--status", "error", "--created-after", "2100-01-01T00:00:00Z")
    assert future.ok().out == "no job matched\n"
    answer = json.loads(jobs("retry", "--endpoint", "/fail", "--json").ok().out)
    assert answer == {"action": "retry", "matched": 1, "outcomes": {"retried": 1}, "more": False}


@ONLY_SQLITE
def test_engine_mistakes(node: Server, jobs: Jobs, capsys: pytest.CaptureFixture[str]) -> None:
    flags = "--status, --endpoint, --created-after, --created-before"
    neither = jobs("retry")
    assert (neither.code, neither.err) == (
        2,
        f"jobstore: give the jobs (ID|TAG ...), or at least one of {flags}\n",
    )
    both = jobs("cancel", "1", "--status", "queued")
    assert (both.code, both.err) == (2, f"jobstore: give jobs or filters ({flags}), not both\n")

    refused_by_argparse = {
        ("retry", "--status", "done"): "'done' jobs cannot be retried; choose from error,",
        ("cancel", "--status", "error"): "'error' jobs cannot be cancelled; choose from scheduled",
        ("cancel", "--created-after", "yesterday"): "expected an RFC 3339 time with a time zone",
        ("create", "/echo", "--delay", "soon"): "expected seconds or a duration like 30s",
        ("create", "/echo", "--delay", "-5"): "expected seconds or a duration like 30s",
        ("create", "/echo", "--run-at", "2036-01-01"): "expected an RFC 3339 time",
        ("create", "/echo", "--run-at", "2036-01-01T00:00"): "expected an RFC 3339 time",
        ("create", "/echo", "--run-at", "2036-01-01T00:00Z", "--delay", "5"): "not allowed with",
        ("create", "/echo", "--run-timeout", "0"): "expected a duration above 0, got '0'",
        ("create", "/echo", "--priority", "high"): "invalid int value: 'high'",
    }
    for args, says in refused_by_argparse.items():
        with pytest.raises(SystemExit) as refused:
            jobs(*args)
        assert refused.value.code == 2, args
        assert says in capsys.readouterr().err.splitlines()[-1], args

    high = jobs("create", "/echo", "--priority", "5000")
    assert high.code == 1 and high.err.startswith("jobstore: The request is not valid: priority:")
    assert json.loads(jobs("list", "--json").ok().out)["items"] == [], "nothing was created"

    done = created_id(jobs("create", "/echo", "--data", "{}", "--wait"))
    again = jobs("retry", str(done), "424242")
    assert again.code == 1 and again.out == ""
    lines = again.err.splitlines()
    assert lines[0].startswith(f"jobstore: job {done}: Job cannot be retried: "), again.err
    assert lines[1].startswith("jobstore: job 424242: Job not found: "), again.err
    missing = jobs("attempts", "424242")
    assert missing.code == 1 and missing.err.startswith("jobstore: Job not found: ")


# -- prune, on SQLite and PostgreSQL ------------------------------------------------------------


def test_prune_removes_finished_jobs(node: Server, jobs: Jobs, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"pruned": true}')
    done_id = created_id(jobs("create", "/echo", "--data", f"@{request}", "--wait"))
    error_id = created_id(jobs("create", "/fail", "--data", "{}"))
    assert jobs("wait", str(error_id)).code == 1

    # The node keeps jobs forever unless told otherwise: a bare prune deletes nothing.
    assert jobs("prune").ok().out.startswith("nothing pruned: the node keeps finished jobs")
    pruned = jobs("prune", "--done", "0s").ok()
    assert pruned.out == "deleted 1 job (1 done); retention: done 0s\n"
    gone = jobs("show", str(done_id))
    assert gone.code == 1 and gone.err.startswith("jobstore: Job not found: "), gone
    assert jobs("show", str(error_id)).ok()
    assert json.loads(jobs("prune", "--error", "0s", "--json").ok().out)["total"] == 1
    assert json.loads(jobs("list", "--json").ok().out)["items"] == []


# -- mistakes: clean messages, documented exit codes --------------------------------------------


@ONLY_SQLITE
def test_errors_are_one_line_with_their_exit_code(node: Server, jobs: Jobs) -> None:
    missing = jobs_process("show", "424242", url=node.url)
    assert missing.code == 1 and missing.out == ""
    assert missing.err.startswith("jobstore: Job not found: ") and missing.err.count("\n") == 1

    assert jobs("show", "no-such-tag").code == 1
    unknown = jobs("create", "/nope")
    assert unknown.code == 1 and unknown.err.startswith("jobstore: No such endpoint: ")

    bad_json = jobs_process("create", "/echo", "--data", "{bad", url=node.url)
    assert bad_json.code == 2 and bad_json.err.startswith("jobstore: --data is not valid JSON: ")
    assert jobs("create", "/echo", "--data", "@/no/such/file.json").code == 2
    assert jobs("create", "/echo", "--data-base64", "not base64!").code == 2
    assert jobs("list", "--limit", "0").code == 2
    assert json.loads(jobs("list", "--json").ok().out)["items"] == [], "nothing was created"

    down = jobs_process("list", url=f"http://127.0.0.1:{free_port()}")
    assert down.code == 3 and down.err.startswith("jobstore: cannot reach http://127.0.0.1:")

    # A flag argparse refuses is a usage error too.
    with pytest.raises(SystemExit) as refused:
        jobs("wait", "1", "--timeout", "-1")
    assert refused.value.code == 2


# -- authentication -----------------------------------------------------------------------------


async def _add_admin(database_url: str, name: str, password: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        await Authenticator(database).add_user(name, password, admin=True)
    finally:
        await database.dispose()


@ONLY_POSTGRES
def test_auth_token_and_password(database_url: str, tmp_path: Path, cli: Jobs) -> None:
    def admin(*args: str) -> str:
        result = run_cli([*args, "--database-url", database_url], tmp_path)
        assert result.returncode == 0, f"jobstore {' '.join(args)}: {result.stderr}"
        return result.stdout

    def alice_token() -> str:
        admin("users", "add", "alice", "--no-password")
        return admin("tokens", "create", "--user", "alice").strip().splitlines()[-1]

    server = Server(database_url, tmp_path, extra_args=["--auth", "required"])
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            provisioned = pool.submit(alice_token)
            server.start()
            token = provisioned.result()
        asyncio.run(_add_admin(database_url, "bob", "s3cret"))
        url = server.url

        anonymous = jobs_process("list", url=url)
        assert anonymous.code == 1, anonymous
        assert anonymous.err.lower().startswith("jobstore: authentication required: ")
        assert anonymous.err.endswith("(set JOBSTORE_TOKEN, or use --token or --user)\n")

        alice = {"JOBSTORE_TOKEN": token}
        made = jobs_process("create", "/echo", "--data", '{"a": 1}', "--wait", url=url, env=alice)
        assert made.ok().out.splitlines()[0].startswith("created job ")
        listed = jobs_process("list", url=url, env=alice).ok()
        assert "/echo" in listed.out
        assert token not in made.out + made.err + listed.out + listed.err
        refused = jobs_process("prune", "--done", "0s", url=url, env=alice)
        assert refused.code == 1 and refused.err.startswith("jobstore: Not allowed: ")

        bob = {"JOBSTORE_URL": url, "JOBSTORE_PASSWORD": "s3cret"}
        shown = cli("list", "--user", "bob", "--json", env=bob).ok()
        assert len(json.loads(shown.out)["items"]) == 1, "an admin sees alice's job"
        wrong = cli("list", "--user", "bob", env={**bob, "JOBSTORE_PASSWORD": "nope"})
        assert wrong.code == 1 and "authentication required" in wrong.err.lower()
        assert "JOBSTORE_TOKEN" not in wrong.err, "the hint is for those who gave no credentials"
        both = cli("list", "--user", "bob", "--token", "x", env=bob)
        assert both.code == 2 and both.err == "jobstore: give --token or --user, not both\n"
        pruned = jobs_process(
            "prune", "--done", "0s", "--user", "bob", "--password-stdin", url=url, stdin="s3cret\n"
        ).ok()
        assert pruned.out == "deleted 1 job (1 done); retention: done 0s\n"
        assert "s3cret" not in shown.out + shown.err + wrong.err + pruned.out + pruned.err
    finally:
        server.cleanup()
        print(f"\n===== logs of {server.node_id} =====\n{server.logs()}")


# -- formatting, no node needed -----------------------------------------------------------------


def test_formatting() -> None:
    stats = {"counts": {"queued": 10001, "running": 2, "done": 0, "error": 0}, "capped_at": 10000}
    assert _counts(stats) == "jobs: more than 10000 queued, 2 running, 0 done, 0 error"
    assert [_duration(s) for s in (None, 1.04, 75, 3725)] == ["-", "1.0s", "1m15s", "1h02m"]
