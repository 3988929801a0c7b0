"""HTTP helpers shared by the facade tests."""

from __future__ import annotations

import base64


def basic(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic for `user` and `password`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
