"""Fixtures of the client's tests: real nodes, and the client in both of its forms.

`start_node` runs `jobstore serve` on a free port with a fresh SQLite database in the test's
directory, killed at teardown. `connect` is parametrized: once it builds a `Client`, once an
`AsyncClient` behind `Blocking`, so every test that takes it runs both classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstore.client import AsyncClient, Client
from tests.client.nodes import Blocking, Connect, Node, StartNode


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[StartNode]:
    """start_node(*serve_args, database_url=None): a running node, killed at teardown."""
    nodes: list[Node] = []

    def start(*args: str, database_url: str | None = None) -> Node:
        nodes.append(Node.start(tmp_path, *args, database_url=database_url))
        return nodes[-1]

    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node()


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """connect(url, **kwargs): a client of the parametrized kind, closed at teardown."""
    closers: list[Callable[[], None]] = []
    loop = asyncio.new_event_loop() if request.param == "async" else None

    def make(url: str, **kwargs: Any) -> Any:
        if loop is None:
            client = Client(url, **kwargs)
            closers.append(client.close)
            return client
        aclient = AsyncClient(url, **kwargs)
        closers.append(lambda: loop.run_until_complete(aclient.aclose()))
        return Blocking(aclient, loop)

    yield make
    for close in closers:
        close()
    if loop is not None:
        loop.close()


@pytest.fixture
def client(node: Node, connect: Connect) -> Any:
    """A client of the parametrized kind, connected to `node`."""
    return connect(node.url, timeout=10.0)
