"""HTTP helpers shared by the facades."""

from __future__ import annotations

from starlette.requests import Request

from jobstore.api.limits import DEFAULT_MAX_BODY_BYTES
from jobstore.domain.errors import DecodeError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (never read in full)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise DecodeError(f"request body of {declared} bytes is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DecodeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
