"""CDM's `${...}` placeholders: user variables and the date/time built-ins. Pure.

    ${region}                                  a variable from the start's `variables` map
    ${dateformat(yyyy-MM-dd)}                  the start time, in a Java SimpleDateFormat pattern
    ${dateformat(yyyy-MM-dd HH:mm:ss, -1, DAY)}   ... shifted (SECOND MINUTE HOUR DAY MONTH YEAR)
    ${timestamp()}  ${timestamp(-2, HOUR)}     epoch milliseconds
    ${timestamp(dateformat(yyyyMMdd))}         the formatted time read back: today at 00:00

Times are UTC. MONTH and YEAR shifts clamp to the last valid day of the month.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from jobstore.domain.errors import BadRequest

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_CALL = re.compile(r"^\s*(dateformat|timestamp)\s*\((.*)\)\s*$", re.DOTALL)
_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR")


class UnresolvedVariable(BadRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"Invalid parameter: variable '{name}' has no value")
        self.name = name


class BadPlaceholder(BadRequest):
    pass


def resolve(text: str, variables: Mapping[str, str], now: datetime) -> str:
    """Replace every `${...}` in `text`; raises on an unknown variable or a bad built-in."""
    now = now.astimezone(UTC)
    out: list[str] = []
    pos = 0
    while (start := text.find("${", pos)) != -1:
        end = text.find("}", start + 2)
        if end == -1:
            raise BadPlaceholder(f"Invalid parameter: unclosed placeholder in {text!r}")
        out.append(text[pos:start])
        out.append(_evaluate(text[start + 2 : end], variables, now))
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def placeholders(text: str) -> list[str]:
    """The expressions of the `${...}` in `text`, in order."""
    return re.findall(r"\$\{([^}]*)\}", text)


def _evaluate(expr: str, variables: Mapping[str, str], now: datetime) -> str:
    call = _CALL.match(expr)
    if call is None:
        name = expr.strip()
        if not VARIABLE_NAME.fullmatch(name):
            raise BadPlaceholder(f"Invalid parameter: cannot read placeholder '${{{expr}}}'")
        if name not in variables:
            raise UnresolvedVariable(name)
        return str(variables[name])
    func, args = call.group(1), call.group(2).strip()
    if func == "dateformat":
        pattern, moment = _dateformat_args(args, now)
        return format_java(moment, pattern)
    return str(_timestamp(args, now))


def _dateformat_args(args: str, now: datetime) -> tuple[str, datetime]:
    parts = [p.strip() for p in args.split(",")]
    if len(parts) == 1 and parts[0]:
        return parts[0], now
    if len(parts) == 3 and parts[0]:
        return parts[0], shift(now, _int(parts[1]), parts[2])
    raise BadPlaceholder(
        f"Invalid parameter: dateformat takes (pattern) or (pattern, offset, unit), got ({args})"
    )


def _timestamp(args: str, now: datetime) -> int:
    if not args:
        return _millis(now)
    nested = _CALL.match(args)
    if nested is not None and nested.group(1) == "dateformat":
        pattern, moment = _dateformat_args(nested.group(2).strip(), now)
        return _millis(parse_java(format_java(moment, pattern), pattern, reference=moment))
    parts = [p.strip() for p in args.split(",")]
    if len(parts) == 2:
        return _millis(shift(now, _int(parts[0]), parts[1]))
    raise BadPlaceholder(
        f"Invalid parameter: timestamp takes (), (offset, unit) or (dateformat(...)), got ({args})"
    )


def shift(moment: datetime, offset: int, unit: str) -> datetime:
    unit = unit.strip().upper()
    if unit not in _UNITS:
        raise BadPlaceholder(f"Invalid parameter: unit must be one of {', '.join(_UNITS)}")
    if unit in ("MONTH", "YEAR"):
        months = moment.month - 1 + (offset if unit == "MONTH" else 12 * offset)
        year, month = moment.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            raise BadPlaceholder("Invalid parameter: date shift out of range")
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    seconds = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}[unit]
    try:
        return moment + timedelta(seconds=offset * seconds)
    except OverflowError:
        raise BadPlaceholder("Invalid parameter: date shift out of range") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadPlaceholder(
            f"Invalid parameter: offset must be a whole number, got {text!r}"
        ) from None


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- Java SimpleDateFormat, the common letters -------------------------------------------------

_LETTERS = "yMdHmsS"


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """("lit", text) and ("field", letters) tokens of a SimpleDateFormat pattern.

    As in Java: text in single quotes is literal, and '' is one quote, inside quotes or not.
    """
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            if pattern.startswith("''", i):
                out.append(("lit", "'"))
                i += 2
                continue
            text, i = [], i + 1
            while True:
                if i >= len(pattern):
                    raise BadPlaceholder(f"Invalid parameter: unterminated quote in {pattern!r}")
                if pattern.startswith("''", i):
                    text.append("'")
                    i += 2
                elif pattern[i] == "'":
                    i += 1
                    break
                else:
                    text.append(pattern[i])
                    i += 1
            out.append(("lit", "".join(text)))
        elif char.isascii() and char.isalpha():
            if char not in _LETTERS:
                raise BadPlaceholder(
                    f"Invalid parameter: date pattern letter {char!r} is not supported "
                    f"(use {', '.join(_LETTERS)})"
                )
            end = i
            while end < len(pattern) and pattern[end] == char:
                end += 1
            out.append(("field", pattern[i:end]))
            i = end
        else:
            out.append(("lit", char))
            i += 1
    return out


def _field_value(moment: datetime, letters: str) -> str:
    kind, width = letters[0], len(letters)
    if kind == "y":
        return f"{moment.year % 100:02d}" if width == 2 else f"{moment.year:0{max(width, 4)}d}"
    value = {
        "M": moment.month,
        "d": moment.day,
        "H": moment.hour,
        "m": moment.minute,
        "s": moment.second,
        "S": moment.microsecond // 1000,
    }[kind]
    return f"{value:0{width}d}"


def format_java(moment: datetime, pattern: str) -> str:
    return "".join(
        _field_value(moment, text) if kind == "field" else text for kind, text in _tokens(pattern)
    )


def parse_java(text: str, pattern: str, *, reference: datetime) -> datetime:
    """Read back a time formatted with `pattern`; fields it lacks start at their beginning.

    A two-digit year falls within 80 years before and 20 after `reference`, as in Java.
    """
    regex, names = [], []
    for kind, value in _tokens(pattern):
        if kind == "lit":
            regex.append(re.escape(value))
        elif value == "yy":
            regex.append(r"(\d{2})")
            names.append("yy")
        else:
            wide = len(value) == 1 or value[0] == "y"
            regex.append(r"(\d+)" if wide else rf"(\d{{{len(value)}}})")
            names.append(value[0])
    match = re.fullmatch("".join(regex), text)
    if match is None:
        raise BadPlaceholder(f"Invalid parameter: cannot read {text!r} as {pattern!r}")
    got = dict(zip(names, (int(g) for g in match.groups()), strict=True))
    year = got.get("y", 1970)
    if "yy" in got:
        year = reference.year // 100 * 100 + got["yy"]
        if year > reference.year + 20:
            year -= 100
        elif year <= reference.year - 80:
            year += 100
    try:
        return datetime(
            year,
            got.get("M", 1),
            got.get("d", 1),
            got.get("H", 0),
            got.get("m", 0),
            got.get("s", 0),
            got.get("S", 0) * 1000,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise BadPlaceholder(f"Invalid parameter: {exc}") from None
