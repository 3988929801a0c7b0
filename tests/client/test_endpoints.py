"""The client's `endpoints()` against real nodes, sync and async (see conftest.py): Python
endpoints, HTTP endpoints of an endpoints file and a Kinetica upstream for the other names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobstore.client import EndpointInfo, EndpointList, Unauthorized
from tests.client.nodes import Connect, StartNode
from tests.support.e2e import run_cli_ok

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ENDPOINTS_FILE = """\
[endpoints."/thumbs"]
url = "http://media.internal:8080/v2/thumbnails?size=small"
mode = "callback"
max_attempts = 4
description = "make a thumbnail"

[endpoints."/notify"]
url = "https://hooks.internal/notify"
method = "PUT"
retryable = false
"""


def test_the_built_in_endpoints(client: Any) -> None:
    listing = client.endpoints()
    assert isinstance(listing, EndpointList)
    assert listing.names() == ["/echo", "/fail", "/sleep"]
    assert (listing.other_kind, listing.other_upstream) == (None, None)
    assert listing.raw["other_names"] is None
    echo, fail, sleep = listing.items
    assert isinstance(sleep, EndpointInfo)
    assert (sleep.kind, sleep.upstream, sleep.retryable, sleep.raw_payload) == (
        "python",
        None,
        True,
        False,
    )
    assert sleep.description.startswith("Sleep for `seconds`")
    assert sleep.request_schema["name"] == "sleep_request"
    assert sleep.response_schema["fields"] == [{"name": "slept", "type": "double"}]
    assert sleep.max_attempts is None
    assert echo.raw_payload is True and echo.request_schema is None
    assert fail.raw == listing.raw["items"][1]


def test_http_endpoints_and_a_kinetica_upstream(
    start_node: StartNode, connect: Connect, tmp_path: Path
) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(ENDPOINTS_FILE)
    node = start_node(
        "--endpoints-file", str(path), "--kinetica-upstream", "http://gpudb.internal:9191"
    )
    listing = connect(node.url).endpoints()
    assert listing.names() == ["/echo", "/fail", "/notify", "/sleep", "/thumbs"]
    by_name = {item.name: item for item in listing.items}
    thumbs, notify = by_name["/thumbs"], by_name["/notify"]
    assert (thumbs.kind, thumbs.upstream, thumbs.description, thumbs.max_attempts) == (
        "http",
        "media.internal:8080",  # the host only: never the URL's path or query
        "make a thumbnail",
        4,
    )
    assert (notify.kind, notify.upstream, notify.retryable) == ("http", "hooks.internal", False)
    assert notify.description == "PUT hooks.internal (sync)"  # made up when none is given
    assert (listing.other_kind, listing.other_upstream) == (
        "kinetica-upstream",
        "gpudb.internal:9191",
    )
    assert "v2/thumbnails" not in str(listing.raw)


def test_under_auth_the_listing_needs_a_user(
    start_node: StartNode, connect: Connect, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    run_cli_ok(["db", "upgrade", "--database-url", database_url], tmp_path)
    run_cli_ok(
        ["users", "add", "alice", "--password-stdin", "--database-url", database_url],
        tmp_path,
        stdin="s3cret-pw\n",
    )
    node = start_node("--auth", "required", database_url=database_url)
    with pytest.raises(Unauthorized):
        connect(node.url).endpoints()
    signed_in = connect(node.url, user="alice", password="s3cret-pw")
    assert signed_in.endpoints().names() == ["/echo", "/fail", "/sleep"]
