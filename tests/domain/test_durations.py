"""Retention periods as text (domain/durations.py): parse_duration and format_duration."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobstore.domain.durations import format_duration, parse_duration
from jobstore.domain.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed is not None and parsed.total_seconds() == seconds


def test_parse_duration_forever_and_errors() -> None:
    assert parse_duration("forever") is None and parse_duration("") is None
    assert format_duration(None) == "forever"
    assert format_duration(timedelta(days=7)) == "1w"
    assert format_duration(timedelta(hours=36)) == "36h"
    for bad in ("7", "7 days", "-1d", "d", "1y", "999999999w"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
