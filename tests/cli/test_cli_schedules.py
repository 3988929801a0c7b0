"""`jobstore schedules ...` against a real `jobstore serve` process, over the REST API.

The commands run in-process (`jobstore.cli.main.main` with capsys), but for the exit codes and
the one-line errors on a pipe, which run the installed `jobstore` script as a child. The node
fires its schedules itself, on its real clock.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli, Run, clear_cli_env, run_child, run_main, running_node
from tests.support.e2e import Server, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ONLY_SQLITE = pytest.mark.parametrize("dialect", ["sqlite"])


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A started node on the test database (the dialect's), killed at teardown."""
    with running_node(database_url, tmp_path) as server:
        yield server


@pytest.fixture
def cli(node: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`jobstore GROUP ARGS` in-process against `node`, with no other JOBSTORE_* variable."""
    clear_cli_env(monkeypatch)
    monkeypatch.setenv("JOBSTORE_URL", node.url)

    def run(group: str, *args: str) -> Run:
        return run_main(capsys, [group, *args])

    return run


@pytest.fixture
def schedules(cli: Cli) -> Cli:
    return functools.partial(cli, "schedules")


def listed(schedules: Cli) -> dict[str, dict[str, object]]:
    page = json.loads(schedules("list", "--json").ok().out)
    return {s["name"]: s for s in page["schedules"]}


def child(*args: str, url: str) -> Run:
    """The installed `jobstore schedules ARGS` as a child process, on a pipe."""
    return run_child("schedules", *args, url=url)


# -- the happy path, on SQLite and PostgreSQL ---------------------------------------------------


def test_add_list_pause_resume_fire_delete(node: Server, cli: Cli, schedules: Cli) -> None:
    assert schedules("list").ok().out == "no schedules\n"
    nightly = schedules(
        "add", "nightly", "/echo", "--cron", "0 2 * * *", "--timezone", "Europe/Paris"
    ).ok()
    assert re.fullmatch(
        r"added schedule nightly, cron 0 2 \* \* \* \(Europe/Paris\); "
        r"next fire \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n",
        nightly.out,
    ), nightly.out
    beat = schedules(
        "add",
        "beat",
        "/echo",
        "--every",
        "1",
        "--payload",
        '{"n": 1}',
        "--priority",
        "5",
        "--concurrency-key",
        "customer-7",
        "--misfire",
        "once",
    ).ok()
    assert beat.out.startswith("added schedule beat, every 1s; next fire ")

    # The node fires `beat` by itself; its jobs link back to it.
    fired = wait_for("beat's first fire", lambda: listed(schedules)["beat"]["last_job_id"])
    job = json.loads(cli("jobs", "show", str(fired), "--json").ok().out)
    assert job["schedule"] == "beat" and job["links"] == {"schedule": "/api/v1/schedules/beat"}
    assert job["priority"] == 5 and job["request"]["json"] == {"n": 1}
    assert job["options"]["concurrency_key"] == "customer-7"

    table = schedules("list").ok().out.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "NEXT", "FIRE", "LAST", "JOB", "ENABLED"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"beat", "nightly"}
    assert "every 1s" in rows["beat"] and rows["beat"].split()[-1] == "yes"
    assert "cron 0 2 * * * (Europe/Paris)" in rows["nightly"]
    assert rows["nightly"].split()[-2:] == ["-", "yes"]  # no job yet

    assert schedules("pause", "beat").ok().out == "schedule beat paused\n"
    assert listed(schedules)["beat"]["enabled"] is False
    assert schedules("list").ok().out.splitlines()[2].split()[-1] == "no"  # beat, by name
    resumed = schedules("resume", "beat").ok()
    assert resumed.out.startswith("schedule beat resumed, next fire ")
    assert json.loads(schedules("pause", "beat", "--json").ok().out)["enabled"] is False

    fire = schedules("fire", "nightly").ok()
    match = re.fullmatch(r"fired schedule nightly: job (\d+)\n", fire.out)
    assert match, fire.out
    job = json.loads(cli("jobs", "show", match.group(1), "--json").ok().out)
    assert job["schedule"] == "nightly"
    assert listed(schedules)["nightly"]["last_job_id"] == int(match.group(1))
    again = json.loads(schedules("fire", "nightly", "--json").ok().out)
    assert again["location"] == f"/api/v1/jobs/{again['job_id']}"

    assert schedules("delete", "nightly").ok().out == "schedule nightly deleted\n"
    assert list(listed(schedules)) == ["beat"]
    assert cli("jobs", "show", match.group(1)).ok()  # its jobs stay


def test_add_paused_with_a_window_and_a_payload_file(
    node: Server, schedules: Cli, tmp_path: Path
) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"from": "file"}')
    added = schedules(
        "add",
        "window",
        "/echo",
        "--every",
        "15m",
        "--payload",
        f"@{request}",
        "--start-at",
        "2030-01-01T00:00:00Z",
        "--end-at",
        "2030-01-02T00:00:00+01:00",
        "--paused",
        "--json",
    ).ok()
    doc = json.loads(added.out)
    assert doc["every_seconds"] == 900.0 and doc["enabled"] is False
    assert doc["payload"] == {"from": "file"}
    assert (doc["start_at"], doc["end_at"]) == ("2030-01-01T00:00:00Z", "2030-01-01T23:00:00Z")
    assert doc["next_fire_at"] == "2030-01-01T00:00:00Z"
    resumed = schedules("resume", "window").ok()
    assert resumed.out.startswith("schedule window resumed, next fire 20")


# -- mistakes ----------------------------------------------------------------------------------


@ONLY_SQLITE
def test_mistakes_are_one_line_with_their_exit_code(node: Server, schedules: Cli) -> None:
    schedules("add", "taken", "/echo", "--every", "60").ok()
    taken = schedules("add", "taken", "/echo", "--every", "60")
    assert taken.code == 1
    assert taken.err == (
        "jobstore: Schedule name already in use: a schedule named 'taken' exists already\n"
    )
    bad_cron = schedules("add", "bad", "/echo", "--cron", "every day")
    assert bad_cron.code == 1 and bad_cron.err.startswith("jobstore: The request is not valid: ")
    assert "cron: 'every day' is not a cron expression" in bad_cron.err
    zone = schedules("add", "bad", "/echo", "--cron", "0 * * * *", "--timezone", "Nowhere")
    assert zone.code == 1 and "timezone: unknown time zone 'Nowhere'" in zone.err
    unknown = schedules("add", "bad", "/nope", "--every", "60")
    assert unknown.code == 1 and unknown.err.startswith("jobstore: No such endpoint: ")
    assert schedules("add", "bad", "/echo", "--every", "60", "--payload", "{bad").code == 2
    assert list(listed(schedules)) == ["taken"], "nothing else was added"

    for action in ("pause", "resume", "delete", "fire"):
        missing = child(action, "nope", url=node.url)
        assert missing.code == 1 and missing.out == ""
        assert missing.err == "jobstore: Schedule not found: no schedule named 'nope'\n"
    down = child("list", url=f"http://127.0.0.1:{free_port()}")
    assert down.code == 3 and down.err.startswith("jobstore: cannot reach http://127.0.0.1:")

    # What argparse refuses is a usage error: both --cron and --every, neither, a bad --every.
    for args in (
        ["add", "x", "/echo", "--cron", "* * * * *", "--every", "5"],
        ["add", "x", "/echo"],
        ["add", "x", "/echo", "--every", "0"],
        ["add", "x", "/echo", "--every", "60", "--start-at", "tomorrow"],
    ):
        with pytest.raises(SystemExit) as refused:
            schedules(*args)
        assert refused.value.code == 2, args
