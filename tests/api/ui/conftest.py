"""Fixtures of the dashboard tests: the app with and without an executor, and with users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobstore.core.accounts import Authenticator
from jobstore.store import Database
from tests.api.ui.pages import Env, Secured, dashboard
from tests.support.http import basic


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async with dashboard(db) as e:
        yield e


@pytest.fixture
async def idle(db: Database) -> AsyncIterator[Env]:
    """No executor: every job stays queued until cancelled."""
    async with dashboard(db, run_jobs=False) as e:
        yield e


@pytest.fixture
async def secured(db: Database) -> AsyncIterator[Secured]:
    """No executor; users alice and bob, and root, an admin; creds(user) signs in as one."""
    auth = Authenticator(db)
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        await auth.add_user(name, f"pw-{name}", admin=admin)

    def creds(user: str) -> dict[str, str]:
        return basic(user, f"pw-{user}")

    async with dashboard(db, run_jobs=False, authenticator=auth) as env:
        yield env, creds
