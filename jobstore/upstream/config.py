"""Endpoints that call an upstream HTTP service, declared in a TOML file (--endpoints-file).

    [endpoints."/thumbnails/make"]
    url = "https://media.internal/thumbnails"
    mode = "sync"                 # or "callback"
    timeout_seconds = 30
    headers = { Authorization = "Bearer ${env:MEDIA_TOKEN}" }

`${env:NAME}` in a URL or a header value is read from the environment when the file is loaded:
secrets stay out of the file, the database and the logs (a missing variable stops the node at
start, naming the variable, never a value). docs/endpoints.md describes every key.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobstore.domain.errors import BadOption, ConfigError
from jobstore.domain.options import parse_run_options

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 1_048_576
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
# Headers every call sets itself; an entry cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "idempotency-key",
        "x-jobstore-job-id",
        "x-jobstore-job-tag",
        "x-jobstore-attempt",
        "x-jobstore-job-token",
        "x-jobstore-callback-url",
    }
)


class Mode(enum.StrEnum):
    SYNC = "sync"  # the upstream's answer is the job's result
    CALLBACK = "callback"  # the upstream accepts (202) and completes the job through the API


@dataclass(frozen=True)
class HttpEntry:
    """One endpoint of the file. `headers`, `url` and `cancel_url` hold the values read from
    the environment: shown nowhere, not even in repr (listings give `header_names`, `host`)."""

    name: str
    url: str = field(repr=False)  # `${env:NAME}` may put a secret in it (an API key)
    method: str = "POST"
    mode: Mode = Mode.SYNC
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int | None = None
    retry_errors: bool = True
    backoff_seconds: float | None = None
    priority: int | None = None
    concurrency_limit: int | None = None
    global_limit: int | None = None
    retryable: bool = True
    success_statuses: frozenset[int] = frozenset()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    status_headers: tuple[str, ...] = ()
    follow_redirects: bool = False
    cancel_url: str | None = field(default=None, repr=False)
    # What error messages never show: the values `${env:...}` put in the URLs, and every
    # header value (a literal token in the file is a secret too).
    secrets: tuple[str, ...] = field(default=(), repr=False)
    description: str = ""

    @property
    def host(self) -> str:
        """The upstream's host (and port): all a listing shows of the URL."""
        return host_of(self.url)

    @property
    def header_names(self) -> list[str]:
        return sorted(self.headers)

    def is_success(self, status: int) -> bool:
        if self.success_statuses:
            return status in self.success_statuses
        return status == 202 if self.mode is Mode.CALLBACK else 200 <= status < 300


def host_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def load_endpoints_file(
    path: str | Path, env: Mapping[str, str], *, reserved: Callable[[str], bool] = lambda _: False
) -> list[HttpEntry]:
    """The entries of the file at `path`; ConfigError (naming the file and the entry) when it
    cannot be read or an entry is wrong. `reserved(name)`: a name other endpoints hold."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"endpoints file {where}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"endpoints file {where}: not valid TOML ({exc})") from None
    unknown = set(data) - {"endpoints"}
    if unknown:
        raise ConfigError(f"endpoints file {where}: unknown tables {sorted(unknown)}")
    table = data.get("endpoints", {})
    if not isinstance(table, dict) or not table:
        raise ConfigError(f'endpoints file {where}: no [endpoints."/name"] tables')
    entries = []
    for name, spec in table.items():
        try:
            if reserved(name):
                raise ConfigError("another endpoint (a Python one) has this name")
            entries.append(parse_entry(name, spec, env))
        except ConfigError as exc:
            raise ConfigError(f"endpoints file {where}: endpoint {name!r}: {exc}") from None
    return entries


_KEYS = {
    "url",
    "method",
    "mode",
    "timeout_seconds",
    "max_attempts",
    "retry_errors",
    "backoff_seconds",
    "priority",
    "concurrency_limit",
    "global_limit",
    "retryable",
    "success_statuses",
    "max_response_bytes",
    "headers",
    "status_headers",
    "follow_redirects",
    "cancel_url",
    "description",
}


def parse_entry(name: str, spec: Any, env: Mapping[str, str]) -> HttpEntry:
    """One entry; ConfigError saying which key is wrong and what it must be."""
    if not name.startswith("/") or len(name) > 256:
        raise ConfigError("the name must start with '/' (at most 256 characters)")
    if not isinstance(spec, dict):
        raise ConfigError("must be a table of keys")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}; known are {', '.join(sorted(_KEYS))}")
    if "url" not in spec:
        raise ConfigError("'url' is required")
    url = _url(_expand(_typed(spec, "url", str), env, "url"), "url")
    mode = _typed(spec, "mode", str, "sync")
    if mode not in tuple(Mode):
        raise ConfigError(f"'mode' must be 'sync' or 'callback', got {mode!r}")
    method = _typed(spec, "method", str, "POST").upper()
    if method not in METHODS:
        raise ConfigError(f"'method' must be one of {', '.join(METHODS)}, got {method!r}")
    cancel_url = spec.get("cancel_url")
    if cancel_url is not None:
        if mode != Mode.CALLBACK:
            raise ConfigError("'cancel_url' applies to mode 'callback' only")
        cancel_url = _url(_expand(_typed(spec, "cancel_url", str), env, "cancel_url"), "cancel_url")
    statuses = _typed(spec, "success_statuses", list, [])
    if not all(isinstance(s, int) and 200 <= s < 300 for s in statuses):
        raise ConfigError("'success_statuses' must list HTTP statuses from 200 to 299")
    status_headers = _typed(spec, "status_headers", list, [])
    if not all(isinstance(h, str) and _HEADER_NAME.fullmatch(h) for h in status_headers):
        raise ConfigError("'status_headers' must list header names")
    retryable = _typed(spec, "retryable", bool, True)
    headers = _headers(spec.get("headers", {}), env)
    # An upstream that failed for a moment is the common case: retried unless told not to
    # (and never when the endpoint must not run twice).
    retry_errors = _typed(spec, "retry_errors", bool, retryable)
    if retry_errors and not retryable:
        raise ConfigError("'retry_errors' needs a retryable endpoint (not 'retryable = false')")
    timeout_seconds = _positive(spec, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    max_attempts = _whole(spec, "max_attempts")
    backoff_seconds = _positive(spec, "backoff_seconds", None)
    priority = _typed(spec, "priority", int, None)
    _job_options(
        timeout_seconds=timeout_seconds,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        priority=priority,
    )
    return HttpEntry(
        name=name,
        url=url,
        method=method,
        mode=Mode(mode),
        timeout_seconds=timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
        max_attempts=max_attempts,
        retry_errors=retry_errors,
        backoff_seconds=backoff_seconds,
        priority=priority,
        concurrency_limit=_whole(spec, "concurrency_limit"),
        global_limit=_whole(spec, "global_limit"),
        retryable=retryable,
        success_statuses=frozenset(statuses),
        max_response_bytes=_whole(spec, "max_response_bytes") or DEFAULT_MAX_RESPONSE_BYTES,
        headers=headers,
        status_headers=tuple(h.lower() for h in status_headers),
        follow_redirects=_typed(spec, "follow_redirects", bool, False),
        cancel_url=cancel_url,
        description=_typed(spec, "description", str, ""),
        secrets=_secrets(spec, env, headers),
    )


def _secrets(
    spec: Mapping[str, Any], env: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[str, ...]:
    """The environment's values the entry reads (all were found), and its header values;
    longest first, so that no shorter one masks part of a longer one."""
    texts = [spec.get("url"), spec.get("cancel_url"), *spec.get("headers", {}).values()]
    names = {n for text in texts if isinstance(text, str) for n in _ENV.findall(text)}
    found = {env[n] for n in names if env.get(n)} | {v for v in headers.values() if v}
    return tuple(sorted(found, key=len, reverse=True))


def _job_options(**given: float | None) -> None:
    """The ranges every job's options have, checked here rather than when the endpoint is
    declared, so the refusal names the file and the entry."""
    try:
        parse_run_options({k: v for k, v in given.items() if v is not None})
    except BadOption as exc:
        raise ConfigError(str(exc)) from None


def _typed(spec: Mapping[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    if key not in spec:
        if default is ...:
            raise ConfigError(f"'{key}' is required")
        return default
    value = spec[key]
    # TOML booleans are not numbers here, nor numbers booleans.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"'{key}' must be {_KINDS[kind]}, got {value!r}")
    return value


_KINDS = {str: "a string", int: "a whole number", bool: "true or false", list: "an array"}


def _positive(spec: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ConfigError(f"'{key}' must be a number of seconds above 0, got {value!r}")
    return float(value)


def _whole(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"'{key}' must be a whole number from 1, got {value!r}")
    return value


def _url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"'{key}' must be an http:// or https:// URL with a host")
    return value


def _expand(value: str, env: Mapping[str, str], what: str) -> str:
    def read(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{what} reads ${{env:{name}}}, which is not set")
        return env[name]

    return _ENV.sub(read, value)


def _headers(value: Any, env: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError("'headers' must be a table of header names and values")
    headers = {}
    for header, text in value.items():
        if not _HEADER_NAME.fullmatch(header) or header.lower() in RESERVED_HEADERS:
            raise ConfigError(f"header {header!r} cannot be set here")
        if not isinstance(text, str):
            raise ConfigError(f"header {header!r} must be a string")
        expanded = _expand(text, env, f"header {header}")
        if "\r" in expanded or "\n" in expanded:
            raise ConfigError(f"header {header!r} has a line break")
        headers[header] = expanded
    return headers
