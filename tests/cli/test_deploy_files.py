"""docs/deploy/: the systemd unit and its environment file name only real settings, and a node
configured by them parses (so the example an operator copies does not fail at boot)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jobstore.cli.main import build_parser
from jobstore.cli.settings import OPTIONS, settings_from

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
KNOWN = {o.env for o in OPTIONS}


def env_file() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "jobstore.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_env_file_names_only_real_settings() -> None:
    text = (DEPLOY / "jobstore.env").read_text()
    named = set(re.findall(r"\bJOBSTORE_[A-Z_]+", text))
    assert named, "the example names no settings"
    assert named <= KNOWN, f"not settings: {sorted(named - KNOWN)}"


def test_a_node_configured_by_the_env_file_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_file().items():
        monkeypatch.setenv(name, value)
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert settings.auth == "required"
    assert settings.node_id == "node-a"
    assert settings.database_url.startswith("postgresql://")


def test_unit_runs_a_command_the_cli_accepts() -> None:
    unit = (DEPLOY / "jobstore.service").read_text()
    [start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(start.removeprefix("ExecStart="))
    assert Path(argv[0]).name == "jobstore"
    build_parser().parse_args(argv[1:])
    assert "EnvironmentFile=/etc/jobstore/jobstore.env" in unit
    # A configuration error exits 2 (docs/configuration.md): restarting would not fix it.
    assert "RestartPreventExitStatus=2" in unit
