"""The accounts store (store/accounts.py, `db.accounts`): users and API tokens, on SQLite and
PostgreSQL. Only hashes are stored; the store takes them as given."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jobstore.domain.clock import ManualClock
from jobstore.store import Database
from jobstore.store.accounts import AuthStore, TokenRow, UserRow


@pytest.fixture
def accounts(db: Database) -> AuthStore:
    return db.accounts


async def add_user(
    db: Database,
    accounts: AuthStore,
    clock: ManualClock,
    name: str,
    password_hash: str | None = None,
    *,
    admin: bool = False,
) -> int:
    async with db.transaction() as conn:
        return await accounts.user_insert(
            conn, name=name, password_hash=password_hash, is_admin=admin, now=clock.now()
        )


async def add_token(
    db: Database,
    accounts: AuthStore,
    clock: ManualClock,
    user_id: int,
    token_hash: str,
    project: str | None = None,
) -> int:
    async with db.transaction() as conn:
        return await accounts.token_insert(
            conn, user_id=user_id, token_hash=token_hash, project=project, now=clock.now()
        )


async def revoke(
    db: Database,
    accounts: AuthStore,
    clock: ManualClock,
    *,
    token_id: int | None = None,
    token_hash: str | None = None,
) -> bool:
    async with db.transaction() as conn:
        return await accounts.token_revoke(
            conn, token_id=token_id, token_hash=token_hash, now=clock.now()
        )


# -- users ------------------------------------------------------------------------------------


async def test_users_are_inserted_found_by_name_and_listed_by_name(
    db: Database, accounts: AuthStore, clock: ManualClock
) -> None:
    bob = await add_user(db, accounts, clock, "bob", "scrypt$bob")
    alice = await add_user(db, accounts, clock, "alice", None, admin=True)
    assert isinstance(bob, int) and isinstance(alice, int) and bob < alice
    async with db.reading() as conn:
        found = await accounts.user_get(conn, "bob")
        admin = await accounts.user_get(conn, "alice")
        missing = await accounts.user_get(conn, "carol")
        other_case = await accounts.user_get(conn, "Bob")
        listed = await accounts.user_list(conn)
    assert found == UserRow(user_id=bob, name="bob", password_hash="scrypt$bob", is_admin=False)
    assert admin == UserRow(user_id=alice, name="alice", password_hash=None, is_admin=True)
    assert missing is None and other_case is None  # names match exactly
    assert listed == [admin, found]  # by name, not by id


async def test_no_users_lists_nothing(db: Database, accounts: AuthStore) -> None:
    async with db.reading() as conn:
        assert await accounts.user_list(conn) == []
        assert await accounts.token_list(conn) == []
        assert await accounts.user_get(conn, "anyone") is None


async def test_a_user_name_and_a_token_hash_are_each_taken_once(
    db: Database, accounts: AuthStore, clock: ManualClock
) -> None:
    alice = await add_user(db, accounts, clock, "alice", "h1")
    await add_token(db, accounts, clock, alice, "t" * 64)
    with pytest.raises(sa.exc.IntegrityError):
        await add_user(db, accounts, clock, "alice", "h2", admin=True)
    with pytest.raises(sa.exc.IntegrityError):
        await add_token(db, accounts, clock, alice, "t" * 64, project="p2")
    async with db.reading() as conn:
        users = await accounts.user_list(conn)
        tokens = await accounts.token_list(conn)
    assert [(u.name, u.password_hash, u.is_admin) for u in users] == [("alice", "h1", False)]
    assert [(t.user, t.project) for t in tokens] == [("alice", None)]


# -- tokens -----------------------------------------------------------------------------------


async def test_tokens_are_found_by_hash_with_their_user(
    db: Database, accounts: AuthStore, clock: ManualClock
) -> None:
    alice = await add_user(db, accounts, clock, "alice", "h")
    root = await add_user(db, accounts, clock, "root", None, admin=True)
    first = await add_token(db, accounts, clock, alice, "a" * 64, project="p1")
    clock.advance(60)
    second = await add_token(db, accounts, clock, root, "b" * 64)
    assert first < second
    async with db.reading() as conn:
        by_alice = await accounts.token_get_by_hash(conn, "a" * 64)
        by_root = await accounts.token_get_by_hash(conn, "b" * 64)
        unknown = await accounts.token_get_by_hash(conn, "c" * 64)
        listed = await accounts.token_list(conn)
    start = ManualClock().now()
    assert by_alice == TokenRow(first, "alice", False, "p1", start, None)
    assert by_root == TokenRow(second, "root", True, None, clock.now(), None)
    assert unknown is None
    assert listed == [by_alice, by_root]  # by token id


async def test_revoke_by_id_or_by_hash_once(
    db: Database, accounts: AuthStore, clock: ManualClock
) -> None:
    alice = await add_user(db, accounts, clock, "alice")
    one = await add_token(db, accounts, clock, alice, "1" * 64)
    two = await add_token(db, accounts, clock, alice, "2" * 64)
    three = await add_token(db, accounts, clock, alice, "3" * 64)
    clock.advance(5)
    assert await revoke(db, accounts, clock, token_id=one)
    assert not await revoke(db, accounts, clock, token_id=one)  # already revoked
    assert await revoke(db, accounts, clock, token_hash="2" * 64)
    assert not await revoke(db, accounts, clock, token_hash="2" * 64)
    assert not await revoke(db, accounts, clock, token_id=three + 100)
    assert not await revoke(db, accounts, clock, token_hash="9" * 64)
    async with db.reading() as conn:
        live = [await accounts.token_get_by_hash(conn, c * 64) for c in "123"]
        listed = await accounts.token_list(conn)
    assert [t.token_id if t else None for t in live] == [None, None, three]
    assert [(t.token_id, t.revoked_at) for t in listed] == [
        (one, clock.now()),
        (two, clock.now()),
        (three, None),
    ]
