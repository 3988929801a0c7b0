"""Users, passwords and API tokens. Secrets are stored hashed and never logged.

Passwords: scrypt with a random salt (stdlib). Tokens: 32 random bytes shown once at creation,
stored as their SHA-256 (a token has full entropy, so a fast hash is the right one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from jobstore.domain.clock import Clock, SystemClock
from jobstore.domain.errors import BadRequest
from jobstore.store import Database
from jobstore.store.accounts import TokenRow, UserRow

TOKEN_PREFIX = "jst_"
# Verified with when the user does not exist, so both cases cost the same.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)
FAILED_LOGIN_CACHE_SECONDS = 5.0
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user, whether an admin, and the project a token is scoped to."""

    user: str
    is_admin: bool = False
    project: str | None = None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Authenticator:
    """Checks credentials against the database; manages users and tokens."""

    def __init__(
        self, db: Database, *, clock: Clock | None = None, cache_seconds: float = 60.0
    ) -> None:
        self.db = db
        self.store = db.accounts
        self.clock = clock or SystemClock()
        self._cache_seconds = cache_seconds
        # hmac(user, password) -> (principal or None, expiry): spares scrypt on every request,
        # and a flood of wrong passwords costs one scrypt per pair per few seconds.
        self._verified: dict[str, tuple[Principal | None, float]] = {}
        self._cache_key = secrets.token_bytes(16)
        # scrypt takes ~50 ms of CPU: run it in threads, two at a time, off the event loop
        # (a blocked loop would miss lease renewals).
        self._hashing = asyncio.Semaphore(2)

    async def basic(self, user: str, password: str) -> Principal | None:
        key = hmac.new(self._cache_key, f"{user}\0{password}".encode(), "sha256").hexdigest()
        cached = self._verified.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.db.reading() as conn:
            row = await self.store.user_get(conn, user)
        stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
        async with self._hashing:
            ok = await asyncio.to_thread(verify_password, password, stored)
        principal = Principal(row.name, row.is_admin) if ok and row is not None else None
        if len(self._verified) > 10_000:
            self._verified.clear()
        ttl = self._cache_seconds if principal else FAILED_LOGIN_CACHE_SECONDS
        self._verified[key] = (principal, time.monotonic() + ttl)
        return principal

    async def bearer(self, token: str) -> Principal | None:
        async with self.db.reading() as conn:
            row = await self.store.token_get_by_hash(conn, token_hash(token))
        if row is None:
            return None
        return Principal(row.user, row.is_admin, row.project)

    # -- management (the CLI) ---------------------------------------------------------------

    async def add_user(self, name: str, password: str | None, *, admin: bool = False) -> int:
        if not NAME_PATTERN.fullmatch(name):
            raise BadRequest("user names are 1-128 letters, digits, '_', '.', '@' or '-'")
        async with self.db.transaction() as conn:
            if await self.store.user_get(conn, name) is not None:
                raise BadRequest(f"user {name!r} already exists")
            return await self.store.user_insert(
                conn,
                name=name,
                password_hash=hash_password(password) if password else None,
                is_admin=admin,
                now=self.clock.now(),
            )

    async def list_users(self) -> list[UserRow]:
        async with self.db.reading() as conn:
            return await self.store.user_list(conn)

    async def create_token(self, user: str, project: str | None = None) -> tuple[int, str]:
        """A new token for `user`; the token text is returned once and never stored."""
        if project is not None and not NAME_PATTERN.fullmatch(project):
            raise BadRequest("project ids are 1-128 letters, digits, '_', '.', '@' or '-'")
        token = new_token()
        async with self.db.transaction() as conn:
            row = await self.store.user_get(conn, user)
            if row is None:
                raise BadRequest(f"no user {user!r}: add it first with 'jobstore users add'")
            token_id = await self.store.token_insert(
                conn,
                user_id=row.user_id,
                token_hash=token_hash(token),
                project=project,
                now=self.clock.now(),
            )
        return token_id, token

    async def revoke_token(self, id_or_token: str) -> bool:
        async with self.db.transaction() as conn:
            if id_or_token.isdigit():
                return await self.store.token_revoke(
                    conn, token_id=int(id_or_token), now=self.clock.now()
                )
            return await self.store.token_revoke(
                conn, token_hash=token_hash(id_or_token), now=self.clock.now()
            )

    async def list_tokens(self) -> list[TokenRow]:
        async with self.db.reading() as conn:
            return await self.store.token_list(conn)
