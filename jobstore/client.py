"""A small synchronous client for a node's REST API (/api/v1), used by `jobstore jobs`.

RemoteError
├── Unreachable     no answer: connection refused, or timed out
└── ApiError        the node answered with an error (RFC 9457 problem details when it can)

Every method returns the parsed JSON the node sent. Credentials travel in headers only and
never appear in an error message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from jobstore import __version__

API = "/api/v1"
MAX_PAGE = 500
# How long a long poll may take beyond its ?wait=, before the read counts as timed out.
POLL_SLACK_SECONDS = 10.0


class RemoteError(Exception):
    """Base of the errors a call to a node can end in."""


class Unreachable(RemoteError):
    """The node did not answer."""


class ApiError(RemoteError):
    """The node refused the request; `problem` is its problem-details body."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.title = str(problem.get("title") or f"HTTP {status}")
        self.detail = str(problem.get("detail") or "")
        self.type = str(problem.get("type") or "about:blank")
        # "Job not found: Job not found: no job ..." says it twice: drop the title then.
        repeats = self.detail.lower().startswith(self.title.lower())
        super().__init__(self.detail if repeats else f"{self.title}: {self.detail}".rstrip(": "))


JobRef = int | str  # an id, or a tag


def safe_url(url: str) -> str:
    """The URL without any user:password@ part, fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


class JobstoreClient:
    """Calls one node. Use as a context manager, or call close()."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"jobstore-cli/{__version__}", "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user is not None:
            auth = httpx.BasicAuth(user, password or "")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url + API,
            headers=headers,
            auth=auth,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobstoreClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------

    def jobs(
        self,
        *,
        status: Iterable[str] = (),
        endpoint: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> dict[str, Any]:
        """One page of jobs, newest first: {"items", "next", "next_before"}."""
        params: dict[str, str] = {}
        if states := ",".join(status):
            params["status"] = states
        for name, value in (("endpoint", endpoint), ("tag", tag), ("limit", limit)):
            if value is not None:
                params[name] = str(value)
        if before is not None:
            params["before"] = str(before)
        return self._call("GET", "/jobs", params=params)

    def iter_jobs(
        self,
        *,
        status: Iterable[str] = (),
        endpoint: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every job matching the filters, newest first, following the pages (of `limit`)."""
        status = tuple(status)
        while True:
            page = self.jobs(status=status, endpoint=endpoint, tag=tag, limit=limit, before=before)
            yield from page["items"]
            before = page.get("next_before")
            if before is None:
                return

    def job(self, ref: JobRef, *, wait: float | None = None) -> dict[str, Any]:
        """A job's details by id or tag; with `wait`, long-polls until it finishes."""
        params = {"wait": f"{wait:g}"} if wait is not None else None
        timeout = self.timeout + wait + POLL_SLACK_SECONDS if wait else None
        return self._call("GET", _job_path(ref), params=params, timeout=timeout)

    def create(
        self,
        endpoint: str,
        *,
        payload: Any = None,
        payload_base64: str | None = None,
        encoding: str | None = None,
        tag: str | None = None,
        remove_on_complete: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Create a job; returns its summary and whether it is new (False: same tag and
        request seen before). A `payload` of None sends no payload at all."""
        body: dict[str, Any] = {"endpoint": endpoint, "remove_on_complete": remove_on_complete}
        if payload is not None:
            body["payload"] = payload
        if payload_base64 is not None:
            body["payload_base64"] = payload_base64
        if encoding is not None:
            body["encoding"] = encoding
        if tag is not None:
            body["tag"] = tag
        response = self._send("POST", "/jobs", json=body)
        return _json(response), response.status_code == 201

    def cancel(self, job_id: int) -> dict[str, Any]:
        """{"id", "outcome": "cancelled" | "cancel_requested"}."""
        return self._call("POST", f"/jobs/{job_id}/cancel")

    # -- the node ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """{"counts": {state: n}, "capped_at": n}."""
        return self._call("GET", "/stats")

    def prune(self, retention: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Delete finished jobs older than `retention` per state (default: the node's own)."""
        body = {"retention": dict(retention)} if retention else None
        return self._call("POST", "/prune", json=body)

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json(self._send(method, path, **kwargs))

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{safe_url(self.url)} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {safe_url(self.url)}: {exc}") from exc
        if response.is_success:
            return response
        raise ApiError(response.status_code, _problem(response))


def _job_path(ref: JobRef) -> str:
    if isinstance(ref, int):
        return f"/jobs/{ref}"
    return f"/jobs/tag/{quote(ref, safe='')}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ApiError(
            response.status_code,
            {"title": "Unexpected answer", "detail": f"{_where(response)} did not return JSON"},
        )
    return data


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem-details body, or one made up from a non-JSON error page."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and ("title" in data or "detail" in data):
        return data
    hint = " (is this a jobstore node with the REST API?)" if response.status_code == 404 else ""
    return {
        "title": response.reason_phrase or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": f"{_where(response)}{hint}",
    }


def _where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"
