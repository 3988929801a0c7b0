"""JSON text (codecs/jsontext.py): strict loads and dumps, bytes as Latin-1 strings."""

from __future__ import annotations

import pytest

from jobstore.codecs import jsontext
from jobstore.domain.errors import DecodeError

# -- jsontext --------------------------------------------------------------------------------


def test_jsontext_loads() -> None:
    assert jsontext.loads('{"a": 1}') == {"a": 1}
    assert jsontext.loads(b'["\xc3\xa9"]') == ["\u00e9"]
    with pytest.raises(DecodeError, match="thing is not valid JSON"):
        jsontext.loads("{", what="thing")
    with pytest.raises(DecodeError, match="not valid JSON"):
        jsontext.loads(b"\xff\xfe\xfd")
    with pytest.raises(DecodeError, match="not valid JSON"):
        jsontext.loads("")


def test_jsontext_dumps_is_compact_and_strict() -> None:
    assert jsontext.dumps({"a": [1, 2.5], "b": "\u00e9"}) == '{"a":[1,2.5],"b":"\u00e9"}'
    for bad in (float("nan"), float("inf"), {"x": b"bytes"}, {1j: 1}):
        with pytest.raises(DecodeError, match="cannot be written as JSON"):
            jsontext.dumps(bad)


def test_jsontext_latin1() -> None:
    every = bytes(range(256))
    text = jsontext.latin1_from_bytes(every)
    assert text == "".join(map(chr, range(256)))
    assert jsontext.bytes_from_latin1(text, what="x") == every
    assert jsontext.bytes_from_latin1("", what="x") == b""
    for bad in ("\u0100", "ok\u20ac", "\U0001f600", "\ud800"):
        with pytest.raises(DecodeError, match=r"'data' must carry bytes as a Latin-1 string"):
            jsontext.bytes_from_latin1(bad, what="'data'")


def test_latin1_is_not_utf8_or_base64() -> None:
    """§2.3: the byte 0xe9 is the one code point U+00E9, not UTF-8's two bytes or base64."""
    assert jsontext.bytes_from_latin1("\u00e9", what="x") == b"\xe9"
    assert jsontext.bytes_from_latin1("AAE=", what="x") == b"AAE="
