"""Fuzz target `snappy`: raw-block snappy, as Kinetica's snappy wire and payloads carry it.

Input: a compressed block (codecs/snappy.py's `decompress`).

Rule: decompress returns bytes or raises a ClientError (DecodeError); what it returns
compresses and decompresses back to itself; and the input itself, as plain bytes, round trips
through compress. Anything else is a crash.

    python fuzz/targets/snappy_fuzzer.py fuzz/corpus/snappy
"""

from __future__ import annotations

from jobstore.codecs import snappy
from jobstore.domain.errors import ClientError


def test_one_input(data: bytes) -> None:
    try:
        plain = snappy.decompress(data)
    except ClientError:
        pass
    else:
        assert snappy.decompress(snappy.compress(plain)) == plain
    assert snappy.decompress(snappy.compress(data)) == data


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
