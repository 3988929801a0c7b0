"""Fuzz target `kinetica_envelope`: the Kinetica facade's request bodies, in all three wires.

Input: byte 0 picks the wire (mod 3: binary, snappy, json), byte 1 the endpoint (mod 6, the
sorted paths of api/kinetica/schemas.py), the rest is the HTTP body. The same body is also read
as a `gpudb_response` envelope, as an upstream Kinetica's answer is (upstream/kinetica.py).

Rule: decoding returns a record or raises a ClientError; a record decoded from any wire encodes
back to Avro and decodes to itself; the facade's ERROR envelope for the refusal's message can
be written. Anything else is a crash.

    python fuzz/targets/kinetica_envelope_fuzzer.py fuzz/corpus/kinetica_envelope
"""

from __future__ import annotations

import contextlib

from jobstore.api.kinetica import wire
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.domain.errors import ClientError
from jobstore.domain.models import Encoding
from jobstore.upstream.kinetica import read_envelope

WIRES = (wire.WireEncoding.BINARY, wire.WireEncoding.SNAPPY, wire.WireEncoding.JSON)
PATHS = sorted(ENDPOINTS)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    wire_enc = WIRES[data[0] % len(WIRES)]
    schema = ENDPOINTS[PATHS[data[1] % len(PATHS)]][0]
    body = data[2:]
    try:
        record = wire.decode_request(body, wire_enc, schema)
    except ClientError as exc:
        wire.encode_error(str(exc), wire_enc)  # what the facade answers: it must be writable
    else:
        again = schema.decode(schema.encode(record))
        assert again == record, (record, again)
    encoding = Encoding.JSON if wire_enc is wire.WireEncoding.JSON else Encoding.BINARY
    with contextlib.suppress(ClientError):
        read_envelope(body, encoding)


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
