"""/api/v1/docs: Swagger UI over the OpenAPI document, served by the node (no CDN)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from jobstore.cli.node import node_for_tests
from jobstore.store import Database


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = node_for_tests(db).app(run_background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


async def test_the_page_loads_only_from_the_node(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self'
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/api/v1/docs/") for s in sources), sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 10, source
    init = await client.get("/api/v1/docs/init.js")
    assert '"/api/v1/openapi.json"' in init.text
    bundle = await client.get("/api/v1/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text


async def test_only_the_page_files_are_served(client: httpx.AsyncClient) -> None:
    for name in ("index.html", "swagger-ui.js.map", "..%2F__init__.py", "oauth2-redirect.html"):
        assert (await client.get(f"/api/v1/docs/{name}")).status_code == 404, name
