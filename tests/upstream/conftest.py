"""Fixtures of the upstream tests: a real HTTP server (tests/support/upstream.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.upstream import UpstreamServer


@pytest.fixture
def server() -> Iterator[UpstreamServer]:
    with UpstreamServer() as s:
        yield s
