"""Raw-block snappy (no framing), as Kinetica's client sends it."""

from __future__ import annotations

from jobstore.domain.errors import DecodeError

try:
    import snappy as _snappy
except ImportError:  # pragma: no cover - python-snappy is a core dependency
    _snappy = None

MAX_UNCOMPRESSED = 256 * 1024 * 1024


def _require() -> None:
    if _snappy is None:  # pragma: no cover
        raise DecodeError("snappy is not available: install jobstore with python-snappy")


def _uncompressed_length(data: bytes) -> int:
    """Read the varint header that starts every raw snappy block."""
    length = shift = 0
    for i, byte in enumerate(data[:10]):
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length
        shift += 7
        if i == 9:
            break
    raise DecodeError("invalid snappy data: bad length header")


def compress(data: bytes) -> bytes:
    _require()
    return bytes(_snappy.compress(data))


def decompress(data: bytes) -> bytes:
    _require()
    if not data:
        raise DecodeError("invalid snappy data: empty")
    # Refuse absurd sizes before allocating them.
    if _uncompressed_length(data) > MAX_UNCOMPRESSED:
        raise DecodeError("invalid snappy data: uncompressed size too large")
    try:
        return bytes(_snappy.decompress(data))
    except Exception as exc:
        raise DecodeError(f"invalid snappy data: {exc}") from exc
