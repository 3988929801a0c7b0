"""A stand-in Kinetica for the `--kinetica-upstream` tests: a real HTTP server that speaks
Kinetica's wire (shared/specs/kinetica-wire.md §1-§2) for a few table endpoints.

    with StandInKinetica() as kinetica:
        ... a node with kinetica_upstream=kinetica.url runs /alter/table jobs ...
        [call] = kinetica.calls("/alter/table")
        assert call.encoding == "snappy" and call.request["table_name"] == "orders"

Each request is decoded the way a Kinetica server must: by its Content-Type, schemaless Avro
(`application/octet-stream`), raw-block snappy around that Avro (`application/x-snappy`), or
JSON text; every answer is a `gpudb_response` in the request's family (plain Avro for both
binary wires, never compressed; JSON with `data_str` a string, `data` present and empty).

The endpoints work on a small table catalogue (`tables`: name -> properties):

* `/alter/table` {table_name, action, value, options} sets one property and answers
  {table_name, action, value, info}, `info.previous_value` the value it replaced and
  `info.user` the Basic user who asked (empty without credentials);
* `/show/table` {table_name, options} answers {table_name, table_names, properties, info}:
  one table, or all of them when the name is empty.

A table that does not exist is an ERROR envelope (HTTP 400, as Kinetica answers API errors):
"Table 'missing' does not exist". Any other path is a 404, as on a real Kinetica.

Switches for the failure tests: `fail_next(n, Outage(...))` answers the next n calls with an
outage (HTTP 503 by default, as a proxy in front of a restarting Kinetica says); `hold_next(n)`
keeps the next n calls unanswered until `release()`, or until `down()` drops them unanswered
(Kinetica dying mid-call); `down()` stops listening (connection refused) and `up()` listens
again on the same port. `require_auth` makes calls without that Authorization header a 401;
`prefix` puts the endpoints behind a path (`http://host:port/gpudb-0/alter/table`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import snappy

from jobstore.domain.models import Encoding, Payload
from tests.support.avro import avro_read, avro_write
from tests.support.upstream import CallRecorder

# -- the wire (spec §2) ------------------------------------------------------------------------

GPUDB_RESPONSE: dict[str, Any] = {
    "type": "record",
    "name": "gpudb_response",
    "fields": [
        {"name": "status", "type": "string"},
        {"name": "message", "type": "string"},
        {"name": "data_type", "type": "string"},
        {"name": "data", "type": "bytes"},
        {"name": "data_str", "type": "string"},
    ],
}
CONTENT_TYPES = {
    "binary": "application/octet-stream",
    "snappy": "application/x-snappy",
    "json": "application/json",
}
ENCODINGS = tuple(CONTENT_TYPES)

# -- the stand-in's endpoints ------------------------------------------------------------------

_MAP = {"type": "map", "values": "string"}
ALTER_TABLE_REQUEST: dict[str, Any] = {
    "type": "record",
    "name": "alter_table_request",
    "fields": [
        {"name": "table_name", "type": "string"},
        {"name": "action", "type": "string"},
        {"name": "value", "type": "string"},
        {"name": "options", "type": _MAP},
    ],
}
ALTER_TABLE_RESPONSE: dict[str, Any] = {
    "type": "record",
    "name": "alter_table_response",
    "fields": [
        {"name": "table_name", "type": "string"},
        {"name": "action", "type": "string"},
        {"name": "value", "type": "string"},
        {"name": "info", "type": _MAP},
    ],
}
SHOW_TABLE_REQUEST: dict[str, Any] = {
    "type": "record",
    "name": "show_table_request",
    "fields": [{"name": "table_name", "type": "string"}, {"name": "options", "type": _MAP}],
}
SHOW_TABLE_RESPONSE: dict[str, Any] = {
    "type": "record",
    "name": "show_table_response",
    "fields": [
        {"name": "table_name", "type": "string"},
        {"name": "table_names", "type": {"type": "array", "items": "string"}},
        {"name": "properties", "type": {"type": "array", "items": _MAP}},
        {"name": "info", "type": _MAP},
    ],
}
SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "/alter/table": (ALTER_TABLE_REQUEST, ALTER_TABLE_RESPONSE),
    "/show/table": (SHOW_TABLE_REQUEST, SHOW_TABLE_RESPONSE),
}


def initial_tables() -> dict[str, dict[str, str]]:
    return {
        "orders": {"comment": "", "ttl": "-1"},
        "customers": {"comment": "people who buy", "ttl": "-1"},
    }


def missing_table(name: str) -> str:
    return f"Table '{name}' does not exist"


# -- what a client sends and gets back -----------------------------------------------------------


def request_payload(encoding: str, schema: dict[str, Any], record: dict[str, Any]) -> Payload:
    """A job's request as a Kinetica client stores it: Avro, raw snappy around Avro, or JSON."""
    if encoding == "json":
        return Payload(Encoding.JSON, text=json.dumps(record))
    raw = avro_write(schema, record)
    if encoding == "snappy":
        return Payload(Encoding.SNAPPY, data=snappy.compress(raw))
    return Payload(Encoding.BINARY, data=raw)


def basic_user(authorization: str) -> str:
    """The user of a Basic Authorization header ('' for anything else)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ""
    return base64.b64decode(value).decode().partition(":")[0]


@dataclass(frozen=True)
class KineticaCall:
    """One request the stand-in received."""

    path: str  # the endpoint: the URL's path without the stand-in's prefix
    url_path: str  # the URL's path as it came
    content_type: str
    encoding: str  # binary | snappy | json, from the Content-Type
    headers: dict[str, str]  # names in lower case
    body: bytes
    request: dict[str, Any] | None  # decoded with the endpoint's request schema; None if not
    at: float  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Outage:
    """How the stand-in answers while it is "unavailable": `envelope` answers an ERROR
    gpudb_response with `message` (Kinetica's own voice), else plain text (a proxy's)."""

    status: int = 503
    message: str = "Service Unavailable"
    envelope: bool = False


@dataclass
class _Switches:
    outages: list[Outage] = field(default_factory=list)
    holds: int = 0


class StandInKinetica(CallRecorder[KineticaCall]):
    def __init__(self, port: int = 0, *, require_auth: str | None = None, prefix: str = "") -> None:
        super().__init__()
        self.tables = initial_tables()
        self.require_auth = require_auth
        self.prefix = prefix  # a Kinetica behind a path: http://host:port/gpudb-0/alter/table
        self._switches = _Switches()
        self._released = threading.Event()
        self._dropped = threading.Event()
        self._holding = 0  # calls waiting in hold_next now
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the process, as far as a client can tell ------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.prefix}"

    @property
    def host(self) -> str:
        """How jobstore names this upstream in messages and listings."""
        return f"127.0.0.1:{self._port}"

    def up(self) -> StandInKinetica:
        """Listen (again, on the same port after a `down()`)."""
        assert self._server is None, "the stand-in Kinetica is already up"
        self._released.clear()
        self._dropped.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler_class())
        server.daemon_threads = True
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening; calls held by `hold_next` are dropped without an answer."""
        self._dropped.set()
        with self._arrived:  # every held call has hung up before the port is free again
            assert self._arrived.wait_for(lambda: self._holding == 0, timeout=5)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandInKinetica:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.down()

    # -- switches ---------------------------------------------------------------------------------

    def fail_next(self, count: int, outage: Outage = Outage()) -> None:
        with self._lock:
            self._switches.outages.extend([outage] * count)

    def hold_next(self, count: int) -> None:
        """The next `count` calls wait for `release()` (then are served) or `down()`."""
        with self._lock:
            self._switches.holds += count
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # -- serving ----------------------------------------------------------------------------------

    def _arrive(self, call: KineticaCall) -> tuple[Outage | None, bool]:
        with self._arrived:
            self._record(call)
            outage = self._switches.outages.pop(0) if self._switches.outages else None
            held = outage is None and self._switches.holds > 0
            if held:
                self._switches.holds -= 1
                self._holding += 1
            return outage, held

    def _wait_released(self) -> bool:
        """Wait until released (True) or dropped by `down()` (False)."""
        while not self._released.wait(0.02):
            if self._dropped.is_set():
                return False
        return True

    def _unhold(self) -> None:
        with self._arrived:
            self._holding -= 1
            self._arrived.notify_all()

    def answer(self, call: KineticaCall) -> tuple[int, bytes]:
        """(HTTP status, body) for a call that is not failed or held."""
        family = "json" if call.encoding == "json" else "binary"
        if self.require_auth is not None and call.headers.get("authorization") != self.require_auth:
            return 401, error_envelope("Unauthorized: bad or missing credentials", family)
        if call.path not in SCHEMAS or call.url_path != self.prefix + call.path:
            return 404, b"Not Found"
        if call.request is None:
            return 400, error_envelope(f"cannot decode the {call.encoding} request", family)
        handler = {"/alter/table": self._alter_table, "/show/table": self._show_table}[call.path]
        with self._lock:
            record = handler(call.request, basic_user(call.headers.get("authorization", "")))
        if isinstance(record, str):
            return 400, error_envelope(record, family)
        return 200, ok_envelope(SCHEMAS[call.path][1], record, family)

    def _alter_table(self, req: dict[str, Any], user: str) -> dict[str, Any] | str:
        properties = self.tables.get(req["table_name"])
        if properties is None:
            return missing_table(req["table_name"])
        previous = properties.get(req["action"], "")
        properties[req["action"]] = req["value"]
        return {
            "table_name": req["table_name"],
            "action": req["action"],
            "value": req["value"],
            "info": {"previous_value": previous, "user": user},
        }

    def _show_table(self, req: dict[str, Any], user: str) -> dict[str, Any] | str:
        name = req["table_name"]
        if name and name not in self.tables:
            return missing_table(name)
        names = [name] if name else sorted(self.tables)
        return {
            "table_name": name,
            "table_names": names,
            "properties": [dict(self.tables[n]) for n in names],
            "info": {"user": user},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        kinetica = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read the calls instead

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                encoding = encoding_of(content_type)
                prefixed = self.path.startswith(kinetica.prefix)
                path = self.path[len(kinetica.prefix) :] if prefixed else self.path
                call = KineticaCall(
                    path=path,
                    url_path=self.path,
                    content_type=content_type,
                    encoding=encoding,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    request=decode(path, body, encoding),
                    at=time.monotonic(),
                )
                outage, held = kinetica._arrive(call)
                if held:
                    try:
                        if not kinetica._wait_released():
                            self._drop()
                            return
                    finally:
                        kinetica._unhold()
                if outage is not None:
                    status, data = outage.status, outage.message.encode()
                    if outage.envelope:
                        data = error_envelope(outage.message, family_of(encoding))
                else:
                    status, data = kinetica.answer(call)
                self._send(status, data, encoding)

            def _send(self, status: int, data: bytes, encoding: str) -> None:
                media = "application/json" if encoding == "json" else "application/octet-stream"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", media)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (a timeout, a cancel): nothing to answer

            def _drop(self) -> None:
                """Die mid-call: close the connection with no answer at all."""
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        return Handler


def encoding_of(content_type: str) -> str:
    mime = content_type.split(";", 1)[0].strip().lower()
    for name, value in CONTENT_TYPES.items():
        if mime == value:
            return name
    return "json"  # as Kinetica: anything else is read as JSON


def family_of(encoding: str) -> str:
    return "json" if encoding == "json" else "binary"


def decode(path: str, body: bytes, encoding: str) -> dict[str, Any] | None:
    """The request record, or None when the body is not one of `path`'s requests."""
    if path not in SCHEMAS:
        return None
    schema = SCHEMAS[path][0]
    try:
        if encoding == "json":
            value = json.loads(body)
            if not isinstance(value, dict):
                return None
            fastavro.validate(value, fastavro.parse_schema(schema), raise_errors=True)
            return value
        raw = snappy.decompress(body) if encoding == "snappy" else body
        record = avro_read(schema, raw)
    except Exception:
        return None
    return record if isinstance(record, dict) else None


def ok_envelope(schema: dict[str, Any], record: dict[str, Any], family: str) -> bytes:
    if family == "json":
        return json.dumps(
            {
                "status": "OK",
                "message": "",
                "data_type": schema["name"],
                "data": "",
                "data_str": json.dumps(record),
            }
        ).encode()
    envelope = {
        "status": "OK",
        "message": "",
        "data_type": schema["name"],
        "data": avro_write(schema, record),
        "data_str": "",
    }
    return avro_write(GPUDB_RESPONSE, envelope)


def error_envelope(message: str, family: str) -> bytes:
    envelope: dict[str, Any] = {
        "status": "ERROR",
        "message": message,
        "data_type": "none",
        "data": b"",
        "data_str": "",
    }
    if family == "json":
        return json.dumps({**envelope, "data": ""}).encode()
    return avro_write(GPUDB_RESPONSE, envelope)


def read_envelope(body: bytes, family: str) -> dict[str, Any]:
    """A gpudb_response as a client reads it (for checking the stand-in itself)."""
    if family == "json":
        value = json.loads(body)
        assert isinstance(value, dict)
        return value
    value = avro_read(GPUDB_RESPONSE, body)
    assert isinstance(value, dict)
    return value
