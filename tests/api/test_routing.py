"""The app's router (api/routing.py): fixed paths found in one lookup, the order kept."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from jobstore.api.app import create_app
from jobstore.api.routing import FixedPathRouter
from jobstore.core.jobs import JobService
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database


def answer(text: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{text} via {request.scope['route'].path}")

    return endpoint


def app_of(*routes: Route) -> Starlette:
    app = Starlette()
    app.router = FixedPathRouter(list(routes))
    return app


async def get(app: Starlette, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


async def test_a_fixed_path_is_found_directly_and_labelled_with_its_route() -> None:
    routes = [Route(f"/r{n}/{{x}}", answer(f"r{n}")) for n in range(30)]
    router = FixedPathRouter([*routes, Route("/create/job", answer("create"), methods=["POST"])])
    assert set(router.fixed) == {"/create/job"}
    app = Starlette()
    app.router = router
    got = await get(app, "POST", "/create/job")
    assert (got.status_code, got.text) == (200, "create via /create/job")


async def test_the_ordered_walk_still_decides_what_an_earlier_route_would_take() -> None:
    app = app_of(
        Route("/items/{name}", answer("any item")),
        Route("/items/special", answer("special")),  # shadowed: Starlette never reaches it
        Route("/only-post", answer("post"), methods=["POST"]),
    )
    assert "/items/special" not in app.router.fixed  # type: ignore[attr-defined]
    got = await get(app, "GET", "/items/special")
    assert got.text == "any item via /items/{name}"
    wrong = await get(app, "GET", "/only-post")  # another method: Starlette's 405
    assert wrong.status_code == 405
    assert (await get(app, "GET", "/nowhere")).status_code == 404


async def test_the_app_finds_kinetica_and_rest_paths_in_one_lookup(db: Database) -> None:
    app = create_app(JobService(db, default_registry()))
    fixed = app.router.fixed  # type: ignore[attr-defined]
    assert {"/create/job", "/get/job", "/api/v1/jobs", "/healthz"} <= set(fixed)
    assert "/{path:path}" not in fixed
