"""Settings: every flag has a JOBSTORE_* twin; bad values are refused before anything starts."""

from __future__ import annotations

import os

import pytest

from jobstore.cli.main import build_parser, main
from jobstore.cli.settings import OPTIONS, Settings, settings_from
from jobstore.domain.errors import ConfigError


def parse(*argv: str) -> Settings:
    return settings_from(build_parser().parse_args(list(argv)))


def test_defaults() -> None:
    s = parse("serve")
    assert (s.database_url, s.host, s.port, s.auth) == (
        "sqlite:///jobstore.db",
        "127.0.0.1",
        9191,
        "off",
    )
    assert s.effective_node_id("serve").endswith(":9191")


def test_no_jobstore_setting_reaches_a_test() -> None:
    """tests/conftest.py removes every JOBSTORE_* variable for the session (all but the suite's
    own JOBSTORE_TEST_* knobs), so `JOBSTORE_PORT=9300 pytest` gives the same results."""
    assert [opt.env for opt in OPTIONS if opt.env in os.environ] == []
    leaked = [
        n for n in os.environ if n.startswith("JOBSTORE_") and not n.startswith("JOBSTORE_TEST_")
    ]
    assert leaked == []


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTORE_PORT", "9300")
    monkeypatch.setenv("JOBSTORE_ENDPOINTS", "a.b, c.d")
    monkeypatch.setenv("JOBSTORE_MIGRATE", "false")
    monkeypatch.setenv("JOBSTORE_LEASE_SECONDS", "12.5")
    s = parse("serve")
    assert (s.port, s.endpoints, s.migrate, s.lease_seconds) == (9300, ("a.b", "c.d"), False, 12.5)
    assert parse("serve", "--port", "9400").port == 9400


def test_every_option_has_a_settings_field_and_a_variable() -> None:
    fields = set(Settings.__dataclass_fields__)
    for opt in OPTIONS:
        assert opt.dest in fields, opt.flag
        assert opt.env == "JOBSTORE_" + opt.dest.upper()


def test_bad_environment_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBSTORE_PORT", "lots")
    assert main(["serve"]) == 2
    assert "JOBSTORE_PORT='lots'" in capsys.readouterr().err


def test_a_bad_connect_args_variable_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBSTORE_DATABASE_CONNECT_ARGS", '{"password": "hunter2"')  # no }
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "JOBSTORE_DATABASE_CONNECT_ARGS=(value hidden)" in err and "hunter2" not in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--port", "0"], "port must be"),
        (["serve", "--concurrency", "0"], "concurrency"),
        (["serve", "--log-level", "loud"], "log level"),
        (["serve", "--ha-peers", "node-b:9191"], "http://"),
        (["serve", "--wait-for-database", "nan"], "wait for database"),
        (["worker", "--wait-for-database", "inf"], "wait for database"),
        (["db", "upgrade", "--wait-for-database", "-1"], "wait for database"),
    ],
)
def test_invalid_settings(argv: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse(*argv)


@pytest.mark.parametrize(
    ("host", "auth", "force", "allowed"),
    [
        ("127.0.0.1", "off", False, True),
        ("::1", "off", False, True),
        ("localhost", "off", False, True),
        ("0.0.0.0", "off", False, False),
        ("10.1.2.3", "off", False, False),
        ("0.0.0.0", "required", False, True),
        ("0.0.0.0", "off", True, True),
    ],
)
def test_no_unauthenticated_service_beyond_loopback(
    host: str, auth: str, force: bool, allowed: bool
) -> None:
    settings = Settings(host=host, auth=auth, insecure_bind=force)
    if allowed:
        settings.check_bind()
    else:
        with pytest.raises(ConfigError, match="refusing to listen"):
            settings.check_bind()


def test_database_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Driver arguments keep their JSON types; the pooler mode is one of three words."""
    s = parse(
        "serve",
        "--database-pooler",
        "Transaction",
        "--listen-database-url",
        "postgresql://postgres@db:5432/jobs",
        "--database-connect-args",
        '{"command_timeout": 60, "ssl": "require"}',
    )
    assert s.database_pooler == "transaction"
    assert s.database_connect_args == {"command_timeout": 60, "ssl": "require"}
    assert s.database_options()["listen_url"] == "postgresql://postgres@db:5432/jobs"
    assert Settings().database_connect_args == {} and Settings().database_pooler == "none"
    monkeypatch.setenv("JOBSTORE_DATABASE_CONNECT_ARGS", '{"timeout": 5}')
    assert parse("worker").database_connect_args == {"timeout": 5}
    for flag, bad in (
        ("--database-connect-args", "[1, 2]"),
        ("--database-connect-args", "{not json"),
        ("--database-pooler", "statement"),
    ):
        with pytest.raises(SystemExit):
            parse("serve", flag, bad)
