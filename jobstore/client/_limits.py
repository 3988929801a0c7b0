"""The client's limit operations, as flows in the manner of _operations.py: the requests of
/api/v1/limits and how their answers are read."""

from __future__ import annotations

from urllib.parse import quote

from jobstore.client._operations import Flow, Request, read
from jobstore.client.models import Limit


def _path(key: str) -> str:
    """The key as one path segment. A bare "." or ".." would be resolved away before it
    is sent: those go as %2E (the node refuses to set them, and finds what they hold)."""
    segment = key.replace(".", "%2E") if key in (".", "..") else quote(key, safe="")
    return f"/limits/{segment}"


def list_limits() -> Flow[list[Limit]]:
    response = yield Request("GET", "/limits")
    return read(response, Limit.list_from_json)


def get_limit(key: str) -> Flow[Limit]:
    response = yield Request("GET", _path(key))
    return read(response, Limit.from_json)


def set_limit(key: str, max_running: int) -> Flow[Limit]:
    response = yield Request("PUT", _path(key), json={"max_running": max_running})
    return read(response, Limit.from_json)


def delete_limit(key: str) -> Flow[None]:
    yield Request("DELETE", _path(key))
