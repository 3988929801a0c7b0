"""A page to read and try the REST API: Swagger UI at /api/v1/docs, over /api/v1/openapi.json.

Swagger UI's files come from the installed `swagger-ui-bundle-v2` package and are served by the
node itself: no CDN, so the page works on a machine with no internet and leaks no requests.
Only the three files the page needs are served, read once and cached by the browser.
"""

from __future__ import annotations

from importlib.resources.abc import Traversable

import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Our own start script (no inline script: the page keeps a strict Content-Security-Policy).
INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "%(spec)s",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>jobstore REST API</title>
<link rel="stylesheet" href="%(base)s/swagger-ui.css">
<link rel="icon" type="image/png" href="%(base)s/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="%(base)s/swagger-ui-bundle.js"></script>
<script src="%(base)s/init.js"></script>
</body>
</html>
"""
HEADERS = {
    # Swagger UI styles elements inline and shows images from data: URLs; scripts are ours.
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CACHE = {"Cache-Control": "public, max-age=86400"}


def docs_routes(prefix: str) -> list[Route]:
    """GET {prefix}/docs and its files."""
    base = f"{prefix}/docs"
    folder: Traversable = swagger_ui_bundle.swagger_ui_path
    page = PAGE % {"base": base}
    init = INIT_JS % {"spec": f"{prefix}/openapi.json"}
    cache: dict[str, bytes] = {}

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=HEADERS)

    async def init_js(request: Request) -> Response:
        return Response(init, media_type="text/javascript; charset=utf-8", headers=HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            return Response("not found", status_code=404, media_type="text/plain")
        if name not in cache:
            cache[name] = folder.joinpath(name).read_bytes()
        return Response(cache[name], media_type=media_type, headers={**HEADERS, **CACHE})

    return [
        Route(base, docs, methods=["GET"]),
        Route(f"{base}/init.js", init_js, methods=["GET"]),
        Route(f"{base}/{{name}}", asset, methods=["GET"]),
    ]
