"""The core's accounts (core/accounts.py): hashed secrets, users, tokens, Basic and Bearer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jobstore.core.accounts import Authenticator, hash_password, token_hash, verify_password
from jobstore.domain.errors import BadRequest
from jobstore.store import Database


def test_password_hashes_are_salted_and_verify() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second and first.startswith("scrypt$") and "s3cret" not in first
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("wrong", first)
    assert not verify_password("s3cret", "garbage") and not verify_password("s3cret", "md5$x")


@pytest.fixture
def auth(db: Database) -> Authenticator:
    return Authenticator(db)


async def test_secrets_are_stored_hashed(db: Database, auth: Authenticator) -> None:
    await auth.add_user("alice", "pw-alice")
    _, token = await auth.create_token("alice", project="p1")
    async with db.reading() as conn:
        users = (await conn.execute(sa.text("SELECT name, password_hash FROM users"))).all()
        tokens = (await conn.execute(sa.text("SELECT token_hash, project FROM api_tokens"))).all()
    assert users[0][0] == "alice" and "pw-alice" not in users[0][1]
    assert tokens == [(token_hash(token), "p1")] and token not in tokens[0][0]


async def test_basic_and_bearer(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw-alice")
    await auth.add_user("root", None, admin=True)
    _, token = await auth.create_token("alice", project="p1")
    _, admin_token = await auth.create_token("root")
    alice = await auth.basic("alice", "pw-alice")
    assert alice is not None and (alice.user, alice.is_admin) == ("alice", False)
    assert await auth.basic("alice", "nope") is None
    assert await auth.basic("root", "") is None  # a token-only user has no password
    assert await auth.basic("nobody", "x") is None
    by_token = await auth.bearer(token)
    assert by_token is not None and (by_token.user, by_token.project) == ("alice", "p1")
    admin = await auth.bearer(admin_token)
    assert admin is not None and admin.is_admin
    assert await auth.bearer(token + "x") is None


async def test_revoked_tokens_stop_working(auth: Authenticator) -> None:
    await auth.add_user("alice", None)
    token_id, token = await auth.create_token("alice")
    _, other = await auth.create_token("alice")
    assert await auth.revoke_token(str(token_id))
    assert not await auth.revoke_token(str(token_id))  # already revoked
    assert await auth.bearer(token) is None
    assert await auth.revoke_token(other)  # by its text
    assert await auth.bearer(other) is None
    assert [t.revoked_at is not None for t in await auth.list_tokens()] == [True, True]


async def test_user_and_token_mistakes_are_refused(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw")
    with pytest.raises(BadRequest, match="already exists"):
        await auth.add_user("alice", "pw")
    with pytest.raises(BadRequest, match="user names"):
        await auth.add_user("al ice", "pw")
    with pytest.raises(BadRequest, match="no user 'bob'"):
        await auth.create_token("bob")
