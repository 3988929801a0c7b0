"""One guard for every facade: authenticate, run the handler, and answer each failure.

What a failure is does not depend on the facade; how it is said does. The guard sorts failures
into four kinds and asks the facade's `Renderer` for the answer:

    NotAuthenticated                    -> renderer.unauthorized   (not logged)
    ClientDisconnect (gone mid-body)    -> an empty 400 nobody reads (one line at INFO)
    ClientError, renderer.own_errors    -> renderer.client_error   (not logged)
    StoreUnavailable                    -> renderer.unavailable    (a warning, no traceback)
    any other Exception                 -> renderer.internal       (logged once, with traceback)

So every facade logs the same way, and no failure escapes to Starlette's plain-text 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from jobstore.api.credentials import NotAuthenticated
from jobstore.core.accounts import Principal
from jobstore.domain.errors import ClientError, StoreUnavailable

log = logging.getLogger(__name__)

P = TypeVar("P", bound="Principal | None")


class Renderer(Protocol):
    """One facade's answers to failures, in its own wire format.

    `principal` is the caller once authenticated, else None (auth is off, or failed first).
    """

    @property
    def own_errors(self) -> tuple[type[Exception], ...]:
        """The facade's own error types that `client_error` answers, besides ClientError."""
        ...

    def unauthorized(self, request: Request, exc: NotAuthenticated) -> Response: ...

    def client_error(
        self, request: Request, exc: Exception, principal: Principal | None
    ) -> Response: ...

    def unavailable(
        self, request: Request, exc: StoreUnavailable, principal: Principal | None
    ) -> Response: ...

    def internal(self, request: Request, principal: Principal | None) -> Response: ...


async def guard(
    request: Request,
    renderer: Renderer,
    authenticate: Callable[[Request], Awaitable[P]],
    handler: Callable[[Request, P], Awaitable[Response]],
) -> Response:
    """`handler`'s answer for the caller `authenticate` names, or `renderer`'s for its failure."""
    client_errors: tuple[type[Exception], ...] = (ClientError, *renderer.own_errors)
    principal: Principal | None = None
    try:
        caller = await authenticate(request)
        principal = caller
        return await handler(request, caller)
    except NotAuthenticated as exc:
        return renderer.unauthorized(request, exc)
    except ClientDisconnect:
        # The client went away before its body was read: nothing was done, nobody to answer.
        log.info("%s %s: the client disconnected mid-request", request.method, request.url.path)
        return Response(status_code=400)
    except client_errors as exc:
        return renderer.client_error(request, exc, principal)
    except StoreUnavailable as exc:
        # Expected while the database is away; the traceback would say nothing new.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return renderer.unavailable(request, exc, principal)
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.url.path)
        return renderer.internal(request, principal)
