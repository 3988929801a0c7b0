"""JSON text helpers, and Kinetica's Latin-1 mapping of Avro bytes inside JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from jobstore.domain.errors import DecodeError
from jobstore.domain.inputs import DEFAULT_MAX_NESTING, check_text, check_value, refuse

__all__ = [
    "bytes_from_latin1",
    "check_text",
    "dumps",
    "latin1_from_bytes",
    "loads",
    "storable_text",
    "why_not_json",
]


def loads(
    text: str | bytes,
    *,
    what: str = "body",
    max_nesting: int = DEFAULT_MAX_NESTING,
) -> Any:
    """JSON from outside, checked once (`jobstore.domain.inputs`): valid JSON without NaN or
    Infinity, nested at most `max_nesting` levels, its numbers finite, and no lone surrogate
    in any string or key. A NUL may be in a string: JSON text holds it escaped. Fields that
    go into SQL columns of their own are checked by the facade that reads them.

    The value is walked only when its text could fail the checks: when it has more brackets
    than `max_nesting`, or a `\\ud` escape (the only way to spell a surrogate in JSON). Most
    payloads need no walk at all.
    """
    overflow = False

    def number(literal: str) -> float:  # 1e400, or 400 digits: too large for a double
        nonlocal overflow
        parsed = float(literal)
        overflow = overflow or not math.isfinite(parsed)
        return parsed

    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{what} is not valid JSON: {why_not_json(text, exc)}") from exc
    except RecursionError:
        why = f"nests deeper than {max_nesting} levels"
        raise refuse(what, why, location="body", name=what, deep=True) from None
    if isinstance(text, str) and not text.isascii():
        # A lone surrogate needs no escape in a Python string.
        check_text(text, what=what, nul_ok=True)
    if overflow or _needs_walk(text, max_nesting):  # the walk names the field
        check_value(value, what=what, max_nesting=max_nesting, nul_ok=True)
    return value


def _needs_walk(text: str | bytes, max_nesting: int) -> bool:
    if isinstance(text, bytes):
        deep = text.count(b"[") + text.count(b"{") > max_nesting
        return deep or b"\\ud" in text or b"\\uD" in text
    deep = text.count("[") + text.count("{") > max_nesting
    return deep or "\\ud" in text or "\\uD" in text


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def why_not_json(text: str | bytes, exc: ValueError) -> str:
    """Why `text` is not JSON, in words: `Expecting value at line 1 column 33`."""
    if isinstance(exc, UnicodeDecodeError):
        return f"it is not UTF-8 text (at byte {exc.start + 1})"
    if isinstance(exc, json.JSONDecodeError):
        if not text.strip():
            return "it is empty"
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"value cannot be written as JSON: {exc}") from exc
    except RecursionError:
        raise DecodeError("value cannot be written as JSON: it nests too deeply") from None


def storable_text(text: str) -> str:
    """`text` made storable where it cannot be refused (a handler's error message): NUL and
    lone surrogates, which neither database can store, written out as backslash escapes."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def bytes_from_latin1(text: str, *, what: str) -> bytes:
    """Kinetica sends Avro `bytes` in JSON as a string with one code point per byte."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise DecodeError(
            f"{what} must carry bytes as a Latin-1 string (code points 0-255)"
        ) from exc


def latin1_from_bytes(data: bytes) -> str:
    return data.decode("latin-1")
