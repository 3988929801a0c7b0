"""Help written for the people who run jobstore, usage errors at the command they were made in,
and `jobstore jobs ...` that does not load the server's modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobstore.cli.main import main

COMMANDS = [
    ["serve"],
    ["worker"],
    ["db", "upgrade"],
    ["db", "current"],
    ["db", "downgrade"],
    ["users", "add"],
    ["users", "list"],
    ["tokens", "create"],
    ["tokens", "revoke"],
    ["tokens", "list"],
    ["endpoints"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "create"],
    ["jobs", "wait"],
    ["jobs", "cancel"],
    ["jobs", "prune"],
]
# What a maintainer's docstring leaks into help: module paths and library names.
INSIDE_NAMES = ("composition root", "jobstore.client", "cli/", ".py", "rich", "argparse")


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["jobs"], *COMMANDS], ids=" ".join)
def test_help_is_for_users(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(argv, capsys)
    assert "examples:" in text
    assert f"jobstore {' '.join(argv)}".strip() in text.split("examples:")[1]
    leaked = [name for name in INSIDE_NAMES if name in text.lower()]
    assert not leaked, leaked


@pytest.mark.parametrize(
    ("argv", "usage", "says"),
    [
        (["jobs", "list", "--status", "failed"], "jobstore jobs list", "unknown state 'failed'"),
        (["jobs", "list", "--state", "done"], "jobstore jobs list", "--state done"),
        (["serve", "--prot", "1"], "jobstore serve", "--prot"),
        (["users", "list", "--colour"], "jobstore users list", "--colour"),
    ],
)
def test_usage_errors_exit_2_with_the_command_usage(
    argv: list[str], usage: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {usage} ")
    assert says in err.splitlines()[-1]


def test_jobs_commands_load_no_server_modules() -> None:
    probe = (
        "import sys\n"
        "from jobstore.cli.main import parse\n"
        "parse(['jobs', 'list'])\n"
        "import jobstore.cli.jobs\n"
        "heavy = ('sqlalchemy', 'starlette', 'fastavro', 'uvicorn', 'alembic', 'asyncpg')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
