"""Credentials from HTTP headers, shared by the facades."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import overload

from starlette.datastructures import Headers

from jobstore.core.accounts import Authenticator, Principal
from jobstore.domain.inputs import text_problem


async def principal_from_authorization(
    authenticator: Authenticator, value: str
) -> Principal | None:
    """The caller named by an `Authorization: Basic ...` or `Bearer ...` value; None if wrong."""
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return await authenticator.bearer(credentials)
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):  # binascii.Error, or text that is not ASCII
            return None
        user, sep, password = decoded.partition(":")
        if not sep or text_problem(user) or text_problem(password):
            return None  # wrong credentials, whatever they hold: never a query with a NUL
        return await authenticator.basic(user, password)
    return None


async def principal_from_token(authenticator: Authenticator, value: str) -> Principal | None:
    """The caller whose token is `value` (a header that carries the bare token); None if wrong."""
    return await authenticator.bearer(value.strip())


@dataclass(frozen=True, slots=True)
class CredentialHeader:
    """The header a facade's callers put their credentials in, and how its value is checked."""

    name: str
    check: Callable[[Authenticator, str], Awaitable[Principal | None]]


AUTHORIZATION = CredentialHeader("authorization", principal_from_authorization)
X_AUTH_TOKEN = CredentialHeader("x-auth-token", principal_from_token)  # Huawei's IAM token


class NotAuthenticated(Exception):
    """Authentication is on and the request carries no valid credentials.

    `presented` tells a request without credentials from one whose credentials are wrong. Each
    facade answers it in its own dialect (ERROR envelope, problem document, sign-in page).
    """

    def __init__(self, *, presented: bool) -> None:
        super().__init__("credentials are wrong" if presented else "no credentials")
        self.presented = presented


@overload
async def authenticate(
    authenticator: Authenticator, headers: Headers, source: CredentialHeader = ...
) -> Principal: ...


@overload
async def authenticate(
    authenticator: Authenticator | None, headers: Headers, source: CredentialHeader = ...
) -> Principal | None: ...


async def authenticate(
    authenticator: Authenticator | None,
    headers: Headers,
    source: CredentialHeader = AUTHORIZATION,
) -> Principal | None:
    """The caller named by the `source` header; None when authentication is off."""
    if authenticator is None:
        return None
    value = headers.get(source.name, "")
    if not value.strip():
        raise NotAuthenticated(presented=False)
    principal = await source.check(authenticator, value)
    if principal is None:
        raise NotAuthenticated(presented=True)
    return principal


def owner_filter(principal: Principal | None) -> str | None:
    """Whose jobs a caller may see: everyone's with auth off or for admins, else their own."""
    if principal is None or principal.is_admin:
        return None
    return principal.user
