"""The built-in endpoints: /echo, /sleep and /fail."""

from __future__ import annotations

import math
from typing import Any

from jobstore.domain.errors import JobFailed
from jobstore.endpoints.context import JobContext
from jobstore.endpoints.definition import endpoint

SLEEP_REQUEST = {
    "type": "record",
    "name": "sleep_request",
    "fields": [{"name": "seconds", "type": "double"}],
}
SLEEP_RESPONSE = {
    "type": "record",
    "name": "sleep_response",
    "fields": [{"name": "slept", "type": "double"}],
}
FAIL_REQUEST = {
    "type": "record",
    "name": "fail_request",
    "fields": [{"name": "message", "type": "string", "default": ""}],
}
MAX_SLEEP_SECONDS = 24 * 3600


@endpoint("/echo", raw=True)
async def echo(request: Any, ctx: JobContext) -> Any:
    """Return the request unchanged: JSON in, same JSON out; bytes in, same bytes out."""
    return request


@endpoint("/sleep", request_schema=SLEEP_REQUEST, response_schema=SLEEP_RESPONSE)
async def sleep(request: dict[str, Any], ctx: JobContext) -> dict[str, float]:
    """Sleep for `seconds`, reporting progress; stops promptly when cancelled."""
    seconds = float(request["seconds"])
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP_SECONDS:
        raise JobFailed(f"seconds must be between 0 and {MAX_SLEEP_SECONDS}, got {seconds}")
    steps = max(1, min(100, math.ceil(seconds * 10)))
    for step in range(1, steps + 1):
        await ctx.sleep(seconds / steps)
        ctx.set_progress(100 * step / steps)
    return {"slept": seconds}


@endpoint("/fail", request_schema=FAIL_REQUEST)
async def fail(request: Any, ctx: JobContext) -> None:
    """Always fail, with the request's `message` as the error message."""
    message = request.get("message") if isinstance(request, dict) else None
    raise JobFailed(str(message) if message else "the /fail endpoint failed as asked")
