"""The engine's per-job options: when a job may start, its priority, retries, timeout and
concurrency key.

Kinetica sends them as strings in `options`; REST as typed JSON fields; endpoints declare
defaults in `@endpoint(...)`. One parser reads all three, and every refusal names the option.
Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobstore.domain.errors import BadOption

OPTION_NAMES = (
    "run_at",
    "delay_seconds",
    "priority",
    "max_attempts",
    "retry_errors",
    "backoff_seconds",
    "timeout_seconds",
    "concurrency_key",
)
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
MAX_ATTEMPTS_LIMIT = 1000
MAX_KEY_LENGTH = 128
# Plain ASCII numbers: int() and float() also take "1_0", Arabic-Indic digits, "nan" and "1e999".
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Ten years: far enough for any real schedule, near enough that times stay valid datetimes.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Options one job was given; None means "not given" (the endpoint's or node's default)."""

    run_at: datetime | None = None
    delay_seconds: float | None = None
    priority: int | None = None
    max_attempts: int | None = None
    retry_errors: bool | None = None
    backoff_seconds: float | None = None
    timeout_seconds: float | None = None
    concurrency_key: str | None = None

    def or_defaults(self, defaults: RunOptions) -> RunOptions:
        """These options, each missing one taken from `defaults`."""
        return RunOptions(
            **{
                name: mine if (mine := getattr(self, name)) is not None else getattr(defaults, name)
                for name in OPTION_NAMES
            }
        )


def parse_run_options(options: Mapping[str, Any]) -> RunOptions:
    """Read the engine's options from `options` (strings or JSON values); others are ignored."""
    run_at = _time(options.get("run_at"))
    delay = _seconds(options, "delay_seconds", allow_zero=True)
    if run_at is not None and delay is not None:
        raise BadOption("run_at", "and 'delay_seconds' cannot both be given; choose one")
    return RunOptions(
        run_at=run_at,
        delay_seconds=delay,
        priority=_integer(options, "priority", MIN_PRIORITY, MAX_PRIORITY),
        max_attempts=_integer(options, "max_attempts", 1, MAX_ATTEMPTS_LIMIT),
        retry_errors=_boolean(options, "retry_errors"),
        backoff_seconds=_seconds(options, "backoff_seconds", allow_zero=True),
        timeout_seconds=_seconds(options, "timeout_seconds", allow_zero=False),
        concurrency_key=concurrency_key(options.get("concurrency_key")),
    )


def concurrency_key(value: Any, name: str = "concurrency_key") -> str | None:
    """A concurrency key (e.g. a customer id): 1 to 128 characters, none of them a control
    character. "" means not given, as Kinetica clients send it."""
    if value is None or value == "":
        return None
    rule = f"must be a string of 1 to {MAX_KEY_LENGTH} characters without control characters"
    if not isinstance(value, str):
        raise BadOption(name, f"{rule}, got {value!r}")
    if len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise BadOption(name, f"{rule}, got {value[:40]!r}")
    return value


def _given(options: Mapping[str, Any], name: str) -> Any:
    value = options.get(name)
    if isinstance(value, str) and not value.strip():
        return None  # Kinetica clients send "" for "not set"
    return value


def _integer(options: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = _given(options, name)
    if value is None:
        return None
    rule = f"must be an integer from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadOption(name, f"{rule}, got {value!r}")
    if isinstance(value, str) and not _INTEGER.fullmatch(value.strip()):
        raise BadOption(name, f"{rule}, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise BadOption(name, f"{rule}, got {number}")
    return number


def _seconds(options: Mapping[str, Any], name: str, *, allow_zero: bool) -> float | None:
    value = _given(options, name)
    if value is None:
        return None
    rule = f"must be a number of seconds {'from 0' if allow_zero else 'more than 0'} up to "
    rule += f"{MAX_SECONDS:.0f}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadOption(name, f"{rule}, got {value!r}")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        raise BadOption(name, f"{rule}, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise BadOption(name, f"{rule}, got a number too large") from None
    if not math.isfinite(number) or number < 0 or number > MAX_SECONDS:
        raise BadOption(name, f"{rule}, got {value!r}")
    if number == 0 and not allow_zero:
        raise BadOption(name, f"{rule}, got {value!r}")
    return number


def _boolean(options: Mapping[str, Any], name: str) -> bool | None:
    value = _given(options, name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    raise BadOption(name, f"must be true or false, got {value!r}")


def _time(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    rule = "must be an RFC 3339 time with a time zone, e.g. 2026-12-06T18:00:00Z"
    if not isinstance(value, str):
        raise BadOption("run_at", f"{rule}, got {value!r}")
    text = value.strip()
    if "T" not in text.upper():
        raise BadOption("run_at", f"{rule}, got {value!r}")
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadOption("run_at", f"{rule}, got {value!r}") from None
    if when.tzinfo is None:
        raise BadOption("run_at", f"{rule}, got {value!r} (no time zone)")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise BadOption("run_at", f"{rule}, got {value!r} (out of range)") from None
