"""SQL for users and API tokens. Only hashes are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobstore.store.tables import api_tokens, users


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: int
    name: str
    password_hash: str | None
    is_admin: bool


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_id: int
    user: str
    is_admin: bool
    project: str | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def _make(cls, row: Any) -> TokenRow:
        return cls(*row)


class AuthStore:
    async def user_insert(
        self,
        conn: AsyncConnection,
        *,
        name: str,
        password_hash: str | None,
        is_admin: bool,
        now: datetime,
    ) -> int:
        stmt = (
            sa.insert(users)
            .values(name=name, password_hash=password_hash, is_admin=is_admin, created_at=now)
            .returning(users.c.user_id)
        )
        user_id: int = (await conn.execute(stmt)).scalar_one()
        return user_id

    async def user_get(self, conn: AsyncConnection, name: str) -> UserRow | None:
        row = (
            await conn.execute(
                sa.select(
                    users.c.user_id, users.c.name, users.c.password_hash, users.c.is_admin
                ).where(users.c.name == name)
            )
        ).first()
        return UserRow(*row) if row else None

    async def user_list(self, conn: AsyncConnection) -> list[UserRow]:
        rows = await conn.execute(
            sa.select(
                users.c.user_id, users.c.name, users.c.password_hash, users.c.is_admin
            ).order_by(users.c.name)
        )
        return [UserRow(*r) for r in rows.all()]

    async def token_insert(
        self,
        conn: AsyncConnection,
        *,
        user_id: int,
        token_hash: str,
        project: str | None,
        now: datetime,
    ) -> int:
        stmt = (
            sa.insert(api_tokens)
            .values(user_id=user_id, token_hash=token_hash, project=project, created_at=now)
            .returning(api_tokens.c.token_id)
        )
        token_id: int = (await conn.execute(stmt)).scalar_one()
        return token_id

    def _token_select(
        self,
    ) -> sa.Select[tuple[int, str, bool, str | None, datetime, datetime | None]]:
        return sa.select(
            api_tokens.c.token_id,
            users.c.name,
            users.c.is_admin,
            api_tokens.c.project,
            api_tokens.c.created_at,
            api_tokens.c.revoked_at,
        ).join(users, users.c.user_id == api_tokens.c.user_id)

    async def token_get_by_hash(self, conn: AsyncConnection, token_hash: str) -> TokenRow | None:
        """A live (not revoked) token."""
        stmt = self._token_select().where(
            api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
        )
        row = (await conn.execute(stmt)).first()
        return TokenRow._make(row) if row else None

    async def token_list(self, conn: AsyncConnection) -> list[TokenRow]:
        rows = await conn.execute(self._token_select().order_by(api_tokens.c.token_id))
        return [TokenRow._make(r) for r in rows.all()]

    async def token_revoke(
        self,
        conn: AsyncConnection,
        *,
        token_id: int | None = None,
        token_hash: str | None = None,
        now: datetime,
    ) -> bool:
        stmt = sa.update(api_tokens).where(api_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        if token_id is not None:
            stmt = stmt.where(api_tokens.c.token_id == token_id)
        else:
            stmt = stmt.where(api_tokens.c.token_hash == token_hash)
        return (await conn.execute(stmt)).rowcount == 1
