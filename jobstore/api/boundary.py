"""The door every request passes first: its path, query string and headers checked once.

What the facades read from a request line or a header reaches SQL (filters, names, ids), the
JSON encoder and the dashboard's templates. Rather than each facade checking each parameter,
this middleware refuses, before any route is matched, what none of them could hold
(`jobstore.domain.inputs`):

- a path or query string longer than `max_url_bytes`;
- a NUL character or a lone surrogate in the path, a query parameter's name or value, or a
  header other than credentials (once percent-decoded: `%00` is a NUL);
- under the paths whose routes take ids (`id_prefixes`), a segment of more than
  `MAX_ID_DIGITS` digits: Starlette's `int` convertor fails on thousands of them while matching
  routes, before any facade could answer. A shorter number past the largest id is merely not
  found, by the facade. Elsewhere digits are names (a CDM job's).

The refusal is a 400 in the dialect of the facade the path belongs to (a problem document, a
CDM error body, the dashboard's error page, or Kinetica's ERROR envelope).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jobstore.api.errors import Renderer
from jobstore.domain.errors import DecodeError
from jobstore.domain.inputs import InputLimits, refuse, text_problem

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-auth-token"})
MAX_ID_DIGITS = 64  # far past any id (19 digits), far below Python's int limit (4,300)


class InputBoundary:
    """ASGI middleware: refuse a request line or header no facade could store or show.

    `dialects` pairs path prefixes with their facade's renderer, first match wins; `fallback`
    answers every other path (Kinetica's, whose endpoint paths have no common prefix).
    `id_prefixes` are the paths whose routes read ids from the path.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: InputLimits,
        dialects: Sequence[tuple[str, Renderer]],
        fallback: Renderer,
        id_prefixes: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.limits = limits
        self.id_prefixes = tuple(id_prefixes)
        self.dialects = tuple(dialects)
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_request_line(scope, self.limits, self.id_prefixes)
            except DecodeError as exc:
                renderer = self.renderer_for(scope["path"])
                response = renderer.client_error(Request(scope, receive), exc, None)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def renderer_for(self, path: str) -> Renderer:
        for prefix, renderer in self.dialects:
            if path.startswith(prefix):
                return renderer
        return self.fallback


def check_request_line(
    scope: Scope, limits: InputLimits, id_prefixes: tuple[str, ...] = ()
) -> None:
    """BadInput naming the first part of the request no facade could hold."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    query: bytes = scope.get("query_string", b"")
    if len(raw_path) + len(query) > limits.max_url_bytes:
        why = f"is longer than {limits.max_url_bytes} bytes"
        raise refuse("the URL", why, location="path", name="url")
    path: str = scope["path"]
    if (problem := text_problem(path)) is not None:
        raise refuse("the path", problem, location="path", name="path")
    if path.startswith(id_prefixes):
        for segment in path.split("/"):
            if len(segment) > MAX_ID_DIGITS and segment.isascii() and segment.isdigit():
                # Starlette's int convertor would fail on it; shorter ones are merely not found.
                why = f"has {len(segment)} digits; an id has at most 19"
                raise refuse("a number in the path", why, location="path", name="path")
    if query:
        # As Starlette reads it: Latin-1 on the wire, each parameter percent-decoded as UTF-8.
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if (problem := text_problem(name) or text_problem(value)) is not None:
                raise refuse(f"query parameter {name!r}", problem, location="query", name=name)
    for name, value in scope.get("headers", ()):
        # Credentials are the facades' to judge: wrong ones, whatever they hold, are a 401.
        if b"\x00" in value and name not in CREDENTIAL_HEADERS:
            header = name.decode("latin-1")
            why = "must not contain NUL characters"
            raise refuse(f"header {header!r}", why, location="header", name=header)
