"""The endpoints file (--endpoints-file): what the parser refuses, each refusal naming the file,
the entry and what is wrong (never a secret), and what a valid file declares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from jobstore.cli.node import node_for_tests
from jobstore.domain.errors import ConfigError
from jobstore.store import Database
from jobstore.upstream.config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    HttpEntry,
    Mode,
    load_endpoints_file,
)

GOOD_URL = 'url = "https://media.internal/thumbnails"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> list[HttpEntry]:
    return load_endpoints_file(write(tmp_path, text), env or {})


def refusal(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> str:
    """The message of the ConfigError loading `text` raises."""
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text, env)
    return str(raised.value)


def one(keys: str, name: str = "/thumbs") -> str:
    """A file with the one entry `name` of these keys (TOML lines)."""
    return f'[endpoints."{name}"]\n{keys}'


def test_an_unknown_key_is_refused_and_the_known_ones_are_listed(tmp_path: Path) -> None:
    message = refusal(tmp_path, one(GOOD_URL + "retries = 3\ntimeout = 5\n"))
    path = str(tmp_path / "endpoints.toml")
    assert message.startswith(f"endpoints file {path}: endpoint '/thumbs': ")
    assert "unknown keys ['retries', 'timeout']" in message
    known = message.split("known are ", 1)[1]
    for key in ("url", "method", "mode", "timeout_seconds", "max_attempts", "cancel_url"):
        assert key in known.split(", ")


def test_an_entry_without_a_url_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, one('mode = "sync"\n'))
    assert "endpoint '/thumbs'" in message and "'url' is required" in message


@pytest.mark.parametrize(
    "url",
    ["ftp://media.internal/x", "file:///etc/passwd", "media.internal/x", "http:///no-host"],
)
def test_a_url_that_is_not_http_with_a_host_is_refused(tmp_path: Path, url: str) -> None:
    message = refusal(tmp_path, one(f'url = "{url}"\n'))
    assert "'url' must be an http:// or https:// URL with a host" in message


def test_a_cancel_url_must_be_http_too(tmp_path: Path) -> None:
    text = one(GOOD_URL + 'mode = "callback"\ncancel_url = "gopher://x/"\n')
    assert "'cancel_url' must be an http:// or https:// URL" in refusal(tmp_path, text)


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, one(GOOD_URL + 'mode = "async"\n'))
    assert "'mode' must be 'sync' or 'callback', got 'async'" in message


@pytest.mark.parametrize("mode", ['mode = "sync"\n', ""])
def test_a_cancel_url_is_refused_in_sync_mode(tmp_path: Path, mode: str) -> None:
    text = one(GOOD_URL + mode + 'cancel_url = "https://media.internal/cancel"\n')
    assert "'cancel_url' applies to mode 'callback' only" in refusal(tmp_path, text)


def test_a_header_reading_an_unset_variable_names_it_and_no_value(tmp_path: Path) -> None:
    text = one(
        GOOD_URL + 'headers = { Authorization = "Basic ${env:MEDIA_USER}:${env:MEDIA_PW}" }\n'
    )
    env = {"MEDIA_USER": "alice-7f3a9c", "HOME": "/home/alice"}
    message = refusal(tmp_path, text, env)
    assert "header Authorization reads ${env:MEDIA_PW}, which is not set" in message
    assert "alice-7f3a9c" not in message and "/home/alice" not in message


def test_a_url_reading_an_unset_variable_names_it(tmp_path: Path) -> None:
    message = refusal(tmp_path, one('url = "https://${env:MEDIA_HOST}/thumbs"\n'))
    assert "url reads ${env:MEDIA_HOST}, which is not set" in message


@pytest.mark.parametrize(
    "header", ["Idempotency-Key", "content-type", "X-Jobstore-Job-Token", "HOST", "Bad Name"]
)
def test_a_header_a_call_sets_itself_or_a_malformed_name_is_refused(
    tmp_path: Path, header: str
) -> None:
    message = refusal(tmp_path, one(GOOD_URL + f'headers = {{ "{header}" = "mine" }}\n'))
    assert f"header {header!r} cannot be set here" in message


@pytest.mark.parametrize(
    ("value", "env"),
    [
        ('"one\\ntwo"', {}),
        ('"${env:MEDIA_TOKEN}"', {"MEDIA_TOKEN": "tok-91c2\r\nX-Admin: yes"}),
    ],
)
def test_a_header_value_with_a_line_break_is_refused(
    tmp_path: Path, value: str, env: dict[str, str]
) -> None:
    message = refusal(tmp_path, one(GOOD_URL + f"headers = {{ X-Media = {value} }}\n"), env)
    assert "header 'X-Media' has a line break" in message
    assert "tok-91c2" not in message and "X-Admin" not in message


def test_a_header_value_must_be_a_string(tmp_path: Path) -> None:
    message = refusal(tmp_path, one(GOOD_URL + "headers = { X-Media = 5 }\n"))
    assert "header 'X-Media' must be a string" in message


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[endpoints."/thumbs"]\nurl = \n')
    path = str(tmp_path / "endpoints.toml")
    assert message.startswith(f"endpoints file {path}: not valid TOML (")
    assert "line 2" in message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as raised:
        load_endpoints_file(path, {})
    assert str(raised.value) == f"endpoints file {path}: cannot be read (No such file or directory)"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "[endpoints]\n"])
def test_a_file_declaring_no_endpoint_is_refused(tmp_path: Path, text: str) -> None:
    message = refusal(tmp_path, text)
    assert message.endswith("""no [endpoints."/name"] tables""")


def test_a_table_other_than_endpoints_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, one(GOOD_URL) + "[endpoint]\nx = 1\n")
    assert "unknown tables ['endpoint']" in message


@pytest.mark.parametrize("name", ["thumbs", "", "/" + "x" * 256])
def test_a_name_must_start_with_a_slash(tmp_path: Path, name: str) -> None:
    message = refusal(tmp_path, one(GOOD_URL, name=name))
    assert f"endpoint {name!r}: the name must start with '/'" in message


def test_an_entry_must_be_a_table(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[endpoints]\n"/thumbs" = "https://media.internal/"\n')
    assert "endpoint '/thumbs': must be a table of keys" in message


async def test_a_name_a_python_endpoint_holds_stops_the_node(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, one(GOOD_URL) + one(GOOD_URL, name="/echo"))
    with pytest.raises(ConfigError) as raised:
        node_for_tests(db, endpoints_file=str(path))
    message = str(raised.value)
    assert message.startswith(f"endpoints file {path}: endpoint '/echo': ")
    assert "another endpoint (a Python one) has this name" in message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("timeout_seconds = true", "'timeout_seconds' must be a number of seconds above 0"),
        ('timeout_seconds = "30"', "'timeout_seconds' must be a number of seconds above 0"),
        ("timeout_seconds = 0", "'timeout_seconds' must be a number of seconds above 0"),
        ("backoff_seconds = false", "'backoff_seconds' must be a number of seconds above 0"),
        ("max_attempts = true", "'max_attempts' must be a whole number from 1, got True"),
        ("max_attempts = 2.5", "'max_attempts' must be a whole number from 1, got 2.5"),
        ("max_attempts = 0", "'max_attempts' must be a whole number from 1, got 0"),
        ("concurrency_limit = true", "'concurrency_limit' must be a whole number from 1"),
        ("global_limit = -1", "'global_limit' must be a whole number from 1"),
        ("max_response_bytes = true", "'max_response_bytes' must be a whole number from 1"),
        ("priority = true", "'priority' must be a whole number, got True"),
        ("priority = 1.5", "'priority' must be a whole number, got 1.5"),
        ("retry_errors = 1", "'retry_errors' must be true or false, got 1"),
        ("retryable = 0", "'retryable' must be true or false, got 0"),
        ("follow_redirects = 1", "'follow_redirects' must be true or false, got 1"),
        ("url = 5", "'url' must be a string, got 5"),
        ('method = "FETCH"', "'method' must be one of POST, PUT, PATCH, GET, DELETE"),
        ("success_statuses = [true]", "'success_statuses' must list HTTP statuses"),
        ("success_statuses = [404]", "'success_statuses' must list HTTP statuses"),
        ('success_statuses = "202"', "'success_statuses' must be an array"),
        ('status_headers = ["Bad Name"]', "'status_headers' must list header names"),
        ('headers = "Authorization: x"', "'headers' must be a table"),
        ("description = 5", "'description' must be a string, got 5"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(tmp_path: Path, line: str, said: str) -> None:
    text = one(line + "\n") if line.startswith("url") else one(GOOD_URL + line + "\n")
    message = refusal(tmp_path, text)
    assert "endpoint '/thumbs': " in message and said in message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("priority = 1001", "option 'priority' must be an integer from -1000 to 1000, got 1001"),
        ("max_attempts = 1001", "option 'max_attempts' must be an integer from 1 to 1000"),
        ("timeout_seconds = 5e8", "option 'timeout_seconds' must be a number of seconds"),
        ("backoff_seconds = 5e8", "option 'backoff_seconds' must be a number of seconds"),
    ],
)
def test_a_value_out_of_a_job_options_range_is_refused_naming_the_file(
    tmp_path: Path, line: str, said: str
) -> None:
    message = refusal(tmp_path, one(GOOD_URL + line + "\n"))
    path = str(tmp_path / "endpoints.toml")
    assert message.startswith(f"endpoints file {path}: endpoint '/thumbs': ") and said in message


def test_retrying_errors_of_an_endpoint_that_must_not_run_twice_is_refused(
    tmp_path: Path,
) -> None:
    message = refusal(tmp_path, one(GOOD_URL + "retryable = false\nretry_errors = true\n"))
    assert "'retry_errors' needs a retryable endpoint" in message


def test_a_complete_file_declares_every_field_and_keeps_secrets_out_of_repr(
    tmp_path: Path,
) -> None:
    secret, key = "tok-5b1e8d2c", "qk-77aa19"
    text = (
        '[endpoints."/thumbnails/make"]\n'
        'url = "https://media.internal:8443/thumbs?key=${env:MEDIA_KEY}"\n'
        'method = "put"\n'
        'mode = "callback"\n'
        "timeout_seconds = 90\n"
        "max_attempts = 4\n"
        "retry_errors = false\n"
        "backoff_seconds = 2.5\n"
        "priority = -3\n"
        "concurrency_limit = 2\n"
        "global_limit = 8\n"
        "retryable = true\n"
        "success_statuses = [200, 202]\n"
        "max_response_bytes = 4096\n"
        'headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}", X-Team = "media" }\n'
        'status_headers = ["ETag", "X-Queue"]\n'
        "follow_redirects = true\n"
        'cancel_url = "https://media.internal:8443/cancel?key=${env:MEDIA_KEY}"\n'
        'description = "Thumbnails, made by the media service"\n'
        '[endpoints."/plain"]\n'
        'url = "http://10.0.0.7/run"\n'
    )
    made, plain = load(tmp_path, text, {"MEDIA_TOKEN": secret, "MEDIA_KEY": key})
    assert made == HttpEntry(
        name="/thumbnails/make",
        url=f"https://media.internal:8443/thumbs?key={key}",
        method="PUT",
        mode=Mode.CALLBACK,
        timeout_seconds=90.0,
        max_attempts=4,
        retry_errors=False,
        backoff_seconds=2.5,
        priority=-3,
        concurrency_limit=2,
        global_limit=8,
        retryable=True,
        success_statuses=frozenset({200, 202}),
        max_response_bytes=4096,
        headers={"Authorization": f"Bearer {secret}", "X-Team": "media"},
        status_headers=("etag", "x-queue"),
        follow_redirects=True,
        cancel_url=f"https://media.internal:8443/cancel?key={key}",
        description="Thumbnails, made by the media service",
        secrets=(f"Bearer {secret}", secret, key, "media"),
    )
    assert made.host == "media.internal:8443"
    assert made.header_names == ["Authorization", "X-Team"]
    assert made.is_success(200) and made.is_success(202) and not made.is_success(201)
    assert secret not in repr(made) and key not in repr(made)
    assert plain == HttpEntry(name="/plain", url="http://10.0.0.7/run")
    assert plain.mode is Mode.SYNC and plain.method == "POST" and plain.retry_errors
    assert plain.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert plain.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    assert plain.host == "10.0.0.7"
    assert plain.is_success(204) and not plain.is_success(302)


def test_an_endpoint_that_must_not_run_twice_is_not_retried_by_default(tmp_path: Path) -> None:
    [entry] = load(tmp_path, one(GOOD_URL + 'mode = "callback"\nretryable = false\n'))
    assert not entry.retryable and not entry.retry_errors
    assert entry.is_success(202) and not entry.is_success(200)
