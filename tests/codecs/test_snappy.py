"""Raw-block snappy (codecs/snappy.py): the format, its errors and its size limit."""

from __future__ import annotations

import pytest
import snappy as python_snappy

from jobstore.codecs import snappy
from jobstore.domain.errors import DecodeError

# -- snappy ---------------------------------------------------------------------------------


def test_snappy_round_trip_is_raw_block_format() -> None:
    data = bytes(range(256)) * 40
    compressed = snappy.compress(data)
    assert compressed == bytes(python_snappy.compress(data))
    assert compressed[:2] == bytes([0x80 | (len(data) & 0x7F), len(data) >> 7])  # varint header
    assert snappy.decompress(compressed) == data
    assert snappy.decompress(b"\x00") == b""


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(
            b"\xff\x06\x00\x00sNaPpY" + python_snappy.compress(b"x"), "invalid", id="framing"
        ),
        pytest.param(b"\x80" * 10 + b"\x01", "bad length header", id="varint-too-long"),
        pytest.param(b"\x80\x80", "bad length header", id="varint-unterminated"),
        pytest.param(b"\x80\x80\x80\x80\x10", "too large", id="4GiB"),
        pytest.param(b"\x81\x80\x80\x80\x01" + b"\x00", "too large", id="just-over-256MiB"),
        pytest.param(b"\x05\x10hel", "invalid snappy data", id="truncated-literal"),
        pytest.param(b"\x03\x08ab", "invalid snappy data", id="short-output"),
        pytest.param(b"\x02\x00a\x00", "invalid snappy data", id="trailing-junk"),
        pytest.param(b"\x04\x01\x00", "invalid snappy data", id="copy-before-start"),
        pytest.param(b"not snappy at all", "invalid snappy data", id="text"),
    ],
)
def test_snappy_decompress_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        snappy.decompress(data)
    assert fragment in str(info.value)
    assert "snappy" in str(info.value)


def test_snappy_every_truncation_refused() -> None:
    compressed = python_snappy.compress(b"hello hello hello hello world " * 20)
    for n in range(len(compressed)):
        with pytest.raises(DecodeError):
            snappy.decompress(compressed[:n])


def test_snappy_size_limit_boundary() -> None:
    limit = snappy.MAX_UNCOMPRESSED
    header = b""
    value = limit + 1
    while True:
        byte = value & 0x7F
        value >>= 7
        header += bytes([byte | (0x80 if value else 0)])
        if not value:
            break
    with pytest.raises(DecodeError, match="too large"):
        snappy.decompress(header + b"\x00")
