"""The engine's per-job options: one parser for Kinetica's strings and REST's JSON values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobstore.domain.errors import BadOption
from jobstore.domain.options import RunOptions, parse_run_options


def test_strings_and_json_values_read_the_same() -> None:
    as_text = parse_run_options(
        {"priority": "-5", "max_attempts": "4", "retry_errors": "true",
         "backoff_seconds": "1.5", "timeout_seconds": "30", "delay_seconds": "0"}
    )  # fmt: skip
    as_json = parse_run_options(
        {"priority": -5, "max_attempts": 4, "retry_errors": True,
         "backoff_seconds": 1.5, "timeout_seconds": 30, "delay_seconds": 0}
    )  # fmt: skip
    assert as_text == as_json == RunOptions(
        delay_seconds=0.0, priority=-5, max_attempts=4, retry_errors=True,
        backoff_seconds=1.5, timeout_seconds=30.0,
    )  # fmt: skip


def test_missing_and_empty_options_are_not_given() -> None:
    assert parse_run_options({}) == RunOptions()
    assert parse_run_options({"priority": "", "run_at": " ", "job_tag": "x"}) == RunOptions()


def test_run_at_needs_a_zone() -> None:
    assert parse_run_options({"run_at": "2026-12-06T18:00:00Z"}).run_at == datetime(
        2026, 12, 6, 18, tzinfo=UTC
    )
    assert parse_run_options({"run_at": "2026-12-06T19:00:00+01:00"}).run_at == datetime(
        2026, 12, 6, 18, tzinfo=UTC
    )
    for bad in (
        "2026-12-06T18:00:00", "2026-12-06", "tomorrow", 1733508000,
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    ):  # fmt: skip
        with pytest.raises(BadOption) as refused:
            parse_run_options({"run_at": bad})
        assert refused.value.option == "run_at"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("priority", "1001"), ("priority", -1001), ("priority", 1.5), ("priority", True),
        ("priority", "high"), ("max_attempts", 0), ("max_attempts", "1001"),
        ("retry_errors", "maybe"), ("retry_errors", 1), ("backoff_seconds", -1),
        ("backoff_seconds", "nan"), ("timeout_seconds", 0), ("timeout_seconds", "inf"),
        ("delay_seconds", 10 * 366 * 24 * 3600), ("delay_seconds", False), ("delay_seconds", [1]),
        ("priority", "\u0665"), ("delay_seconds", "1_0"), ("max_attempts", "1_0"),
        ("timeout_seconds", "1e999"), ("backoff_seconds", "0x10"), ("delay_seconds", 10**400),
    ],
)  # fmt: skip
def test_each_bad_value_is_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(BadOption) as refused:
        parse_run_options({name: value})
    assert refused.value.option == name
    assert str(refused.value).startswith(f"option {name!r} must be")


def test_run_at_and_delay_seconds_exclude_each_other() -> None:
    with pytest.raises(BadOption, match="cannot both be given"):
        parse_run_options({"run_at": "2026-12-06T18:00:00Z", "delay_seconds": "5"})


def test_a_job_option_wins_over_the_endpoint_default() -> None:
    mine = RunOptions(priority=5)
    endpoint = RunOptions(priority=1, timeout_seconds=10.0)
    assert mine.or_defaults(endpoint) == RunOptions(priority=5, timeout_seconds=10.0)
