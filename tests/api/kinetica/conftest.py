"""Fixtures of the Kinetica facade's in-process tests: the app over the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobstore.api.kinetica import KineticaConfig
from jobstore.store import Database
from tests.support.kinetica import WIRES, Env, kinetica_env


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """The wire encoding a test speaks: json, binary or snappy."""
    return str(request.param)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for e in kinetica_env(db):
        yield e


@pytest.fixture
async def small_env(db: Database) -> AsyncIterator[Env]:
    """The app with a 1 KiB request body limit."""
    async for e in kinetica_env(db, KineticaConfig(max_body_bytes=1024)):
        yield e
