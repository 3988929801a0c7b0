"""Credentials from HTTP headers, shared by the facades."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers

from jobstore.core.accounts import Authenticator, Principal


async def principal_from_authorization(
    authenticator: Authenticator, headers: Headers
) -> Principal | None:
    """The caller named by `Authorization: Basic ...` or `Bearer ...`; None if absent or wrong."""
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return await authenticator.bearer(credentials)
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        return await authenticator.basic(user, password)
    return None


class NotAuthenticated(Exception):
    """Authentication is on and the request carries no valid credentials.

    Each facade answers it in its own dialect (ERROR envelope, problem document, sign-in page).
    """


async def authenticate(authenticator: Authenticator | None, headers: Headers) -> Principal | None:
    """The caller; None when authentication is off (`authenticator` is None)."""
    if authenticator is None:
        return None
    principal = await principal_from_authorization(authenticator, headers)
    if principal is None:
        raise NotAuthenticated
    return principal


def owner_filter(principal: Principal | None) -> str | None:
    """Whose jobs a caller may see: everyone's with auth off or for admins, else their own."""
    if principal is None or principal.is_admin:
        return None
    return principal.user
