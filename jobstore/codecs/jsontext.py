"""JSON text helpers, and Kinetica's Latin-1 mapping of Avro bytes inside JSON."""

from __future__ import annotations

import json
from typing import Any

from jobstore.domain.errors import DecodeError


def loads(text: str | bytes, *, what: str = "body") -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{what} is not valid JSON: {why_not_json(text, exc)}") from exc
    except RecursionError:
        raise DecodeError(f"{what} nests too deeply") from None


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


def check_text(text: str, *, what: str) -> None:
    """Text must be storable: valid Unicode (no lone surrogates) and no NUL characters."""
    if "\x00" in text:
        raise DecodeError(f"{what} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError(f"{what} is not valid Unicode text: {exc.reason}") from exc


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
