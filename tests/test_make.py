"""`make run` installs what running needs, `make test` adds the test tools (a user's first
hour should not download a browser driver and a fuzzer to start a node)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def planned(target: str, venv: Path) -> str:
    """The commands `make` would run for `target` on a machine without that venv."""
    done = subprocess.run(
        ["make", "-n", *target.split(), f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_make_run_installs_no_test_tools(tmp_path: Path) -> None:
    commands = planned("run", tmp_path / "venv")
    assert "pip install --quiet -e ." in commands
    assert "[test]" not in commands
    assert "jobstore serve" in commands


def test_make_test_installs_the_test_tools(tmp_path: Path) -> None:
    commands = planned("test", tmp_path / "venv")
    assert "pip install --quiet -e '.[test]'" in commands
    assert "pytest" in commands


def test_make_run_passes_flags_to_the_node(tmp_path: Path) -> None:
    commands = planned("run ARGS=--port=9300", tmp_path / "venv").splitlines()
    assert any(c.endswith("jobstore serve --port=9300") for c in commands)


def test_make_test_topologies_runs_only_the_topology_tests(tmp_path: Path) -> None:
    commands = planned("test-topologies", tmp_path / "venv")
    assert "pip install --quiet -e '.[test]'" in commands
    assert "pytest -m topologies" in commands
