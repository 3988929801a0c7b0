"""Retention periods as people write them: 30s, 15m, 12h, 7d, 2w, or forever."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from jobstore.domain.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> timedelta | None:
    """'30s', '15m', '12h', '7d', '2w' -> timedelta; 'forever' or '' -> None (keep)."""
    lowered = text.strip().lower()
    if lowered in ("", "forever", "never"):
        return None
    match = _DURATION.fullmatch(lowered)
    if match is None:
        raise ConfigError(
            f"invalid retention {text!r}: use a number with s, m, h, d or w "
            "(like 7d or 12h), or 'forever'"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds > 100 * 365 * 86400:
        raise ConfigError(f"retention {text!r} is too long; use 'forever'")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "forever"
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"
