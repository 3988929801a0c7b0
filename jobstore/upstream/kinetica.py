"""A real Kinetica behind jobstore (--kinetica-upstream): a restart-safe job front.

A client's `/create/job` may name any endpoint this node does not define (say `/alter/table`).
The job is stored like any other; when it runs, its request goes, in the encoding the client
chose, to the same path on the upstream Kinetica, and the upstream's `gpudb_response` is
unwrapped: `OK` ends the job `done` with the upstream's answer as its response (Avro bytes, or
JSON text: what `/get/job` then hands back), `ERROR` ends it `error` with the upstream's
message. Calls that did not reach Kinetica, that it answered 5xx, or whose ERROR says it cannot
take calls now, run again under the engine's retry rules (by default: 10 attempts, backoff from
1 s); any other ERROR envelope is Kinetica's final word.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.domain.errors import ConfigError, DecodeError, JobFailed
from jobstore.domain.models import Encoding, Payload
from jobstore.domain.options import RunOptions
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import Endpoint
from jobstore.upstream.config import host_of
from jobstore.upstream.http import Answer, Upstreams, body_excerpt, failure, job_headers

KIND = "kinetica-upstream"
# Kinetica's endpoint paths: /alter/table, /show/system/status, ... (no query, no dot segments).
PATH = re.compile(r"(/[a-z0-9_]+){1,6}")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
CONTENT_TYPES = {
    Encoding.BINARY: "application/octet-stream",
    Encoding.SNAPPY: "application/x-snappy",
    Encoding.JSON: "application/json",
}
# Answers that mean "Kinetica cannot take calls now" (spec §2.4): tried again, not final.
UNAVAILABLE = (
    "Kinetica is exiting",
    "Kinetica is offline",
    "System shutting down",
    "Unavailable: Draining HA queue",
    "Query planner is not running",
    "Connection refused",
    "Connection reset",
)
# An upstream may be away for minutes (a restart): its jobs try for about eight and a half by
# default (backoff 1 s, doubling, 10 attempts), unless a job gives its own retry options.
DEFAULTS = RunOptions(retry_errors=True, backoff_seconds=1.0)
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class KineticaUpstream:
    """Where the upstream is, and how to sign in (from the environment, never stored)."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, url: str, env: Mapping[str, str]) -> KineticaUpstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--kinetica-upstream must be an http:// or https:// URL: {url!r}")
        if parts.username or parts.password or parts.query:
            raise ConfigError(
                "--kinetica-upstream takes no credentials or query in the URL; give "
                "JOBSTORE_KINETICA_UPSTREAM_USER and _PASSWORD (or _TOKEN) instead"
            )
        return cls(
            url=url.rstrip("/"),
            username=env.get("JOBSTORE_KINETICA_UPSTREAM_USER") or None,
            password=env.get("JOBSTORE_KINETICA_UPSTREAM_PASSWORD") or None,
            token=env.get("JOBSTORE_KINETICA_UPSTREAM_TOKEN") or None,
        )

    @property
    def host(self) -> str:
        return host_of(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What an error message must never show."""
        return tuple(s for s in (self.password, self.token) if s)

    def authorization(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username:
            pair = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}

    def accepts(self, name: str) -> bool:
        """Whether `name` has the shape of a Kinetica endpoint (all a create checks)."""
        return PATH.fullmatch(name) is not None


def upstream_endpoint(upstreams: Upstreams, upstream: KineticaUpstream, name: str) -> Endpoint:
    """The endpoint `name`, run on the upstream Kinetica."""

    async def call_kinetica(request: Payload, ctx: JobContext) -> Payload:
        headers = {
            **upstream.authorization(),
            **job_headers(ctx),
            "Content-Type": CONTENT_TYPES[request.encoding],
            "Accept": CONTENT_TYPES[request.encoding],
        }
        body = request.text.encode("utf-8") if request.text is not None else request.data
        answer = await upstreams.call(
            ctx.endpoint,
            "POST",
            upstream.url + name,
            headers=headers,
            content=body or b"",
            max_bytes=MAX_RESPONSE_BYTES,
        )
        ctx.set_status("http_status", str(answer.status))
        return unwrap(answer, request.encoding, upstream.host, hide=upstream.secrets)

    return Endpoint(
        name=name,
        handler=call_kinetica,
        takes_payload=True,
        max_attempts=MAX_ATTEMPTS,
        defaults=DEFAULTS,
        kind=KIND,
        upstream=upstream.host,
        description=f"run on the Kinetica at {upstream.host}",
    )


def unwrap(answer: Answer, encoding: Encoding, host: str, *, hide: Sequence[str] = ()) -> Payload:
    """The job's result from an upstream answer: the envelope's data, or JobFailed (whose
    excerpt of a body shows none of `hide`)."""
    try:
        envelope = read_envelope(answer.body, encoding)
    except DecodeError:
        if answer.status >= 300:
            raise failure(answer, host, hide=hide) from None
        raise JobFailed(
            f"{host} answered {answer.status} with no gpudb_response: "
            f"{body_excerpt(answer.body, hide=hide) or 'an empty body'}",
            retry=False,
        ) from None
    status, message = envelope.get("status"), str(envelope.get("message", ""))
    if status == "OK":
        if encoding is Encoding.JSON:
            return Payload(Encoding.JSON, text=str(envelope.get("data_str", "")))
        data = envelope.get("data", b"")
        return Payload(Encoding.BINARY, data=data if isinstance(data, bytes) else b"")
    said = f"{host}: {message or 'ERROR with no message'}"
    unavailable = answer.status >= 500 or any(m in message for m in UNAVAILABLE)
    raise JobFailed(said, retry=unavailable)


def read_envelope(body: bytes, encoding: Encoding) -> dict[str, object]:
    """A `gpudb_response`: Avro for the binary family (never compressed), JSON text else."""
    if encoding is not Encoding.JSON:
        record = GPUDB_RESPONSE.decode(body, what="the upstream's answer")
        if not isinstance(record, dict):
            raise DecodeError("the upstream's answer is not a gpudb_response")
        return record
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("the upstream's answer is not JSON") from None
    # Its text fields are strings: a data_str holding an object is no answer (spec §2), and
    # would be stored as Python's repr of it, not as JSON.
    texts = ("status", "message", "data_str")
    if not (
        isinstance(value, dict)
        and "status" in value
        and all(isinstance(value.get(name, ""), str) for name in texts)
    ):
        raise DecodeError("the upstream's answer is not a gpudb_response")
    return value
