"""Calling upstream services: the node's one connection pool, and the endpoints that use it.

`Upstreams` is a background service of the node: its pool (httpx) opens with the first call
after start (a node without upstream endpoints never pays for one: about 25 ms, most of it the
TLS context) and closes at stop. Its endpoints are ordinary endpoints to the rest of jobstore
(the registry, the executor, the engine's retries and timeouts): each is an async handler that
takes the stored request as it came, sends it to a URL from configuration (never one a client
gave), and turns the answer into the job's result or a failure the engine knows how to retry.

Which answers are retried (docs/endpoints.md): no connection, a timeout, 5xx, 408 and 429 (a
Retry-After is the wait before the next attempt); any other 4xx, a redirect not followed, or an
answer over the size cap ends the job `error` at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from jobstore.codecs import jsontext, unwrap_bytes
from jobstore.domain.errors import DecodeError, JobFailed
from jobstore.domain.models import Encoding, Payload
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import MARK, Endpoint, endpoint
from jobstore.metrics import Metrics
from jobstore.upstream.config import HttpEntry, Mode, host_of

if TYPE_CHECKING:
    import httpx  # at run time imported by the first call: a node without upstreams skips it

log = logging.getLogger(__name__)

EXCERPT_CHARS = 200  # of an upstream's error answer, in the job's error message
CANCEL_CALL_SECONDS = 10.0
CONNECT_SECONDS = 10.0
RETRIED_4XX = (408, 429)
CONTENT_TYPES = {
    Encoding.JSON: "application/json",
    Encoding.BINARY: "application/octet-stream",
    Encoding.SNAPPY: "application/octet-stream",  # sent uncompressed: snappy is Kinetica's wire
}


@dataclass(frozen=True)
class PoolLimits:
    """The shared pool's size: at most `connections` open at once, `keepalive` kept idle."""

    connections: int = 100
    keepalive: int = 20


@dataclass(frozen=True)
class Answer:
    """An upstream's answer, read to the end (or to the size cap)."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


class Upstreams:
    """This node's calls to upstream services. Start before the executor, stop after it."""

    def __init__(
        self,
        *,
        metrics: Metrics | None = None,
        limits: PoolLimits = PoolLimits(),
        public_url: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.limits = limits
        self.public_url = public_url.rstrip("/") if public_url else None
        self._client: httpx.AsyncClient | None = None
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _pool(self) -> httpx.AsyncClient:
        if not self._running:
            raise JobFailed("the node is not running its upstream connections")
        if self._client is None:
            import httpx  # about 4 MB of a node's memory, only where it calls upstreams

            self._client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=self.limits.connections,
                    max_keepalive_connections=self.limits.keepalive,
                ),
                # The job's timeout_seconds bounds a whole call (the engine stops the handler);
                # only the connect has a bound of its own.
                timeout=httpx.Timeout(None, connect=CONNECT_SECONDS),
                follow_redirects=False,
            )
        return self._client

    # -- endpoints ----------------------------------------------------------------------------

    def http_endpoint(self, entry: HttpEntry) -> Endpoint:
        """The endpoint an entry of the endpoints file declares."""

        async def call_upstream(request: Payload, ctx: JobContext) -> Payload:
            return await self._run_http(entry, request, ctx)

        declared = endpoint(
            entry.name,
            retryable=entry.retryable,
            max_attempts=entry.max_attempts,
            priority=entry.priority,
            retry_errors=entry.retry_errors and entry.retryable,
            backoff_seconds=entry.backoff_seconds,
            timeout_seconds=entry.timeout_seconds,
            concurrency_limit=entry.concurrency_limit,
            global_limit=entry.global_limit,
        )
        ep: Endpoint = getattr(declared(call_upstream), MARK)
        return replace(
            ep,
            takes_payload=True,
            kind="http",
            upstream=entry.host,
            description=entry.description or f"{entry.method} {entry.host} ({entry.mode.value})",
        )

    async def _run_http(self, entry: HttpEntry, request: Payload, ctx: JobContext) -> Payload:
        headers = {**entry.headers, **job_headers(ctx)}
        if entry.mode is Mode.CALLBACK:
            headers["X-Jobstore-Job-Token"] = await ctx.callback_token()
            if self.public_url:
                headers["X-Jobstore-Callback-Url"] = f"{self.public_url}/api/v1/jobs/{ctx.job_id}"
        body, content_type = request_body(request)
        headers["Content-Type"] = content_type
        try:
            answer = await self.call(
                ctx.endpoint,
                entry.method,
                entry.url,
                content=body,
                headers=headers,
                follow_redirects=entry.follow_redirects,
                max_bytes=entry.max_response_bytes,
                ctx=ctx,
            )
        except asyncio.CancelledError:
            if entry.mode is Mode.CALLBACK and ctx.cancel_requested and entry.cancel_url:
                await self._call_cancel(entry, headers)
            raise
        ctx.set_status("http_status", str(answer.status))
        for name in entry.status_headers:
            if name in answer.headers:
                ctx.set_status(f"header.{name}", answer.headers[name])
        if not entry.is_success(answer.status):
            raise failure(answer, entry.host, hide=entry.secrets)
        if entry.mode is Mode.SYNC:
            return answer_payload(answer, ctx)
        try:
            await ctx.wait_for_callback()
        except asyncio.CancelledError:
            if ctx.cancel_requested and entry.cancel_url:
                await self._call_cancel(entry, headers)
            raise
        raise AssertionError("wait_for_callback returned")  # it ends by a cancel only

    async def _call_cancel(self, entry: HttpEntry, headers: Mapping[str, str]) -> None:
        """Tell a callback upstream its job was cancelled; best effort, bounded in time."""
        assert entry.cancel_url is not None
        try:
            async with asyncio.timeout(CANCEL_CALL_SECONDS):
                answer = await self.call(
                    entry.name, "POST", entry.cancel_url, headers=headers, max_bytes=4096
                )
            if answer.status >= 300:
                log.warning("%s: the cancel URL answered %d", entry.name, answer.status)
        except (JobFailed, TimeoutError) as exc:
            log.warning("%s: the cancel URL could not be called: %s", entry.name, exc)

    # -- one call -----------------------------------------------------------------------------

    async def call(
        self,
        endpoint_name: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        follow_redirects: bool = False,
        max_bytes: int,
        ctx: JobContext | None = None,
    ) -> Answer:
        """One call, counted in the metrics; JobFailed (retried) when the upstream could not be
        reached or did not answer, or (not retried) when its answer is over `max_bytes`. `ctx`:
        the job the call is for (a call its timeout stopped counts as a timeout)."""
        pool = self._pool()
        import httpx  # imported by _pool already: a lookup

        began = time.monotonic()
        status_class = "cancelled"
        try:
            async with pool.stream(
                method, url, content=content, headers=headers, follow_redirects=follow_redirects
            ) as response:
                body = await read_capped(response, max_bytes)
                status_class = f"{response.status_code // 100}xx"
                return Answer(response.status_code, response.reason_phrase, response.headers, body)
        except httpx.TimeoutException:
            status_class = "timeout"
            raise JobFailed(f"{host_of(url)} did not answer in time") from None
        except httpx.TransportError as exc:
            status_class = "unreachable"
            raise JobFailed(f"could not reach {host_of(url)}: {_brief(exc)}") from None
        except ResponseTooLarge:
            status_class = "too_large"
            raise JobFailed(
                f"{host_of(url)} answered with more than {max_bytes} bytes", retry=False
            ) from None
        finally:
            if status_class == "cancelled" and ctx is not None and ctx.timed_out:
                status_class = "timeout"
            if self.metrics is not None:
                self.metrics.upstream_called(endpoint_name, status_class, time.monotonic() - began)


class ResponseTooLarge(Exception):
    pass


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The answer's body; ResponseTooLarge past `max_bytes` (the rest is never read)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def job_headers(ctx: JobContext) -> dict[str, str]:
    """What every call says of its job: an upstream deduplicates re-runs by Idempotency-Key."""
    return {
        "Idempotency-Key": ctx.idempotency_key,
        "X-Jobstore-Job-Id": str(ctx.job_id),
        "X-Jobstore-Job-Tag": ctx.job_tag,
        "X-Jobstore-Attempt": str(ctx.attempt),
    }


def request_body(request: Payload) -> tuple[bytes, str]:
    """The job's request as an HTTP body: JSON text, or the plain bytes of the binary family."""
    if request.encoding is Encoding.JSON:
        return (request.text or "").encode("utf-8"), CONTENT_TYPES[Encoding.JSON]
    return unwrap_bytes(request), CONTENT_TYPES[request.encoding]


def answer_payload(answer: Answer, ctx: JobContext) -> Payload:
    """A successful answer as the job's result: JSON stays JSON text; any other body is kept
    as bytes, its content type in the status map."""
    content_type = answer.headers.get("content-type", "")
    if content_type:
        ctx.set_status("content_type", content_type)
    if is_json(content_type):
        try:
            text = answer.body.decode("utf-8")
            jsontext.loads(text, what="the upstream's answer")
            jsontext.check_text(text, what="the upstream's answer")
            return Payload(Encoding.JSON, text=text)
        except (UnicodeDecodeError, DecodeError):
            pass  # not the JSON it says it is: kept as the bytes it is
    return Payload(Encoding.BINARY, data=answer.body)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def failure(answer: Answer, host: str, *, hide: Sequence[str] = ()) -> JobFailed:
    """The JobFailed an unsuccessful answer makes: retried for 5xx, 408 and 429 (after the
    answer's Retry-After, when it has one), final else. The excerpt of the body shows none of
    `hide` (an upstream may echo a secret header back)."""
    said = f"{host} answered {answer.status} {answer.reason}".rstrip()
    if excerpt := body_excerpt(answer.body, hide=hide):
        said = f"{said}: {excerpt}"
    if answer.status >= 500 or answer.status in RETRIED_4XX:
        return JobFailed(said, retry_after=retry_after(answer.headers.get("retry-after")))
    if 300 <= answer.status < 400:
        said = f"{said} (redirects are followed only where the entry sets follow_redirects)"
    return JobFailed(said, retry=False)


def body_excerpt(body: bytes, *, hide: Sequence[str] = ()) -> str:
    text = body[: EXCERPT_CHARS * 8].decode("utf-8", errors="replace")
    for secret in hide:
        text = text.replace(secret, "***")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _brief(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
