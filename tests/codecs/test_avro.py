"""Avro schemas (codecs/avro.py): definitions, strict decoding, encoding and validation."""

from __future__ import annotations

import json

import pytest

from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.codecs import Schema
from jobstore.domain.errors import ConfigError, DecodeError
from tests.support import avro

# Kinetica's request and response records serve as sample schemas.
CREATE_RSP = ENDPOINTS["/create/job"][1]
GET_REQ = ENDPOINTS["/get/job"][0]
STATUS_REQ = ENDPOINTS["/show/system/status"][0]
ALTER_REQ = ENDPOINTS["/admin/alter/jobs"][0]

SLEEP_REQUEST = Schema(avro.SLEEP_REQUEST)


# -- avro.Schema -----------------------------------------------------------------------------


def test_schema_invalid_definition() -> None:
    with pytest.raises(ConfigError, match="invalid Avro schema"):
        Schema({"type": "record", "name": "r", "fields": [{"name": "x", "type": "nope"}]})
    with pytest.raises(ConfigError):
        Schema('{"type": "record"}')
    schema = Schema(json.dumps(SLEEP_REQUEST.definition))
    assert schema.name == "sleep_request"


def test_schema_decode_trailing_and_truncated() -> None:
    good = GET_REQ.encode({"job_id": 7, "options": {"job_tag": "abc"}})
    assert GET_REQ.decode(good) == {"job_id": 7, "options": {"job_tag": "abc"}}
    with pytest.raises(DecodeError, match="2 trailing bytes"):
        GET_REQ.decode(good + b"\x00\x00")
    for n in range(len(good)):
        with pytest.raises(DecodeError, match="get_job_request"):
            GET_REQ.decode(good[:n])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x01", id="negative-string-length"),
        pytest.param(b"\x7f", id="string-longer-than-data"),
        pytest.param(b"\x02\xff", id="invalid-utf8"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="huge-varint"),
        pytest.param(b"\xff" * 12, id="unterminated-varint"),
    ],
)
def test_schema_decode_garbage(data: bytes) -> None:
    schema = Schema({"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]})
    with pytest.raises(DecodeError, match="'r'"):
        schema.decode(data)


def test_schema_decode_huge_block_counts_fail_fast() -> None:
    """A map or array claiming 2**62 entries over a few bytes ends in DecodeError, not a hang."""
    for data in (b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", b"\xfd\xff\xff\xff\xff\xff\xff\xff\x7f"):
        with pytest.raises(DecodeError):
            STATUS_REQ.decode(data)
        with pytest.raises(DecodeError):
            ALTER_REQ.decode(data)


def test_schema_encode_mismatch() -> None:
    with pytest.raises(DecodeError, match="create_job_response"):
        CREATE_RSP.encode({"job_id": 1, "info": {"k": 5}})
    with pytest.raises(DecodeError, match="create_job_response"):
        CREATE_RSP.encode({"info": {}})


def test_schema_validate() -> None:
    SLEEP_REQUEST.validate({"seconds": 1.0})
    SLEEP_REQUEST.validate({"seconds": 1})
    for bad in ({"seconds": "1"}, {}, [], None, {"seconds": None}):
        with pytest.raises(DecodeError, match=r"request does not match schema 'sleep_request': "):
            SLEEP_REQUEST.validate(bad)
