"""Fuzz target `kinetica_payloads`: a job's request payload, as a create checks it.

Input: byte 0 picks a built-in endpoint (mod 3: /echo, /fail, /sleep; /echo is raw and has no
schema, the others have Avro request schemas), byte 1 the request encoding (mod 3: binary,
json, snappy); the rest is the payload: bytes for binary and snappy, text for json (UTF-8 with
lone surrogates let through, else Latin-1, so any text can be reached).

Rule: as JobService.prepare_job does, the payload decodes (with the endpoint's schema unless
raw) or a ClientError says why not, and an accepted payload has a request digest. Then the
handler's side: a schema's value re-encodes to the same Avro, and what /echo would answer for
an accepted payload can be stored (encode_response). Anything else is a crash.

    python fuzz/targets/kinetica_payloads_fuzzer.py fuzz/corpus/kinetica_payloads
"""

from __future__ import annotations

from jobstore.codecs import decode_request, encode_response
from jobstore.core.jobs import request_digest
from jobstore.domain.errors import ClientError
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.registry import default_registry

ENDPOINTS = sorted(default_registry(), key=lambda ep: ep.name)
ENCODINGS = (Encoding.BINARY, Encoding.JSON, Encoding.SNAPPY)


def as_text(data: bytes) -> str:
    """Any bytes as text: UTF-8 (lone surrogates allowed), else one character per byte."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def payload_of(encoding: Encoding, data: bytes) -> Payload:
    if encoding is Encoding.JSON:
        return Payload(encoding, text=as_text(data))
    return Payload(encoding, data=data)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    ep = ENDPOINTS[data[0] % len(ENDPOINTS)]
    payload = payload_of(ENCODINGS[data[1] % len(ENCODINGS)], data[2:])
    schema = None if ep.raw else ep.request_schema
    try:
        value = decode_request(payload, schema)
    except ClientError:
        return
    request_digest(ep.name, payload, value)
    if schema is not None and payload.encoding.is_binary_family:
        first = schema.encode(value)
        assert schema.encode(schema.decode(first)) == first
    if ep.raw:  # /echo answers the request as it came: the answer must be storable
        raw = decode_request(payload, None, raw=True)
        answer = encode_response(raw, payload.encoding.response_encoding, None, raw=True)
        assert (answer.text, answer.data) in ((raw, None), (None, raw)), answer


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
