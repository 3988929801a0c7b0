"""What the tests of `jobstore jobs|schedules|limits` share: a node, the CLI in-process or as a
child process on a pipe, and what a run gave back."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobstore.cli.main import main
from tests.support.e2e import Server, clean_env

SCRIPT = Path(sys.executable).with_name("jobstore")
# Variables that would make rich draw for a terminal even on a pipe.
TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def ok(self) -> Run:
        assert self.code == 0, f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"
        return self


Cli = Callable[..., Run]


@contextlib.contextmanager
def running_node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A started node on `database_url`, killed on the way out (its logs printed)."""
    server = Server(database_url, tmp_path)
    try:
        yield server.start()
    finally:
        server.cleanup()
        print(f"\n===== logs of {server.node_id} =====\n{server.logs()}")


def clear_cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No JOBSTORE_* variable, and none that would make rich draw for a terminal."""
    for name in [*TERMINAL_VARIABLES, *(n for n in os.environ if n.startswith("JOBSTORE_"))]:
        monkeypatch.delenv(name, raising=False)


def run_main(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> Run:
    """`jobstore ARGV` in-process; what it printed since the call."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def run_child(
    *argv: str, url: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> Run:
    """The installed `jobstore ARGV` as a child process on a pipe, against `url`."""
    variables = {k: v for k, v in clean_env().items() if k not in TERMINAL_VARIABLES}
    variables.update({"JOBSTORE_URL": url, **(env or {})})
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "jobstore"]
    done = subprocess.run(
        [*command, *argv],
        env=variables,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)
