"""``/docs``: Swagger UI over ``/openapi.json``, its assets served by the service itself.

The assets come from the ``swagger-ui-py`` package (Swagger UI 5, Apache-2.0; its licence is at
``/docs/assets/LICENSE``), located without importing it, so that the page works with no network.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from vtrans.server.http.problems import ProblemError

#: The files the page uses, and their media types: nothing else is served.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vtrans API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<style>body{margin:0}
.topbar-note{font:14px system-ui,sans-serif;padding:8px 20px;background:#1f2937;color:#e5e7eb}
.topbar-note a{color:#93c5fd}</style>
</head><body>
<div class="topbar-note"><a href="/">← dashboard</a> · <a href="/openapi.json">openapi.json</a></div>
<div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true, validatorUrl: null});
</script>
<noscript>The machine-readable API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body></html>
"""


@cache
def _static_dir() -> Path | None:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def _asset(name: str) -> bytes | None:
    directory = _static_dir()
    path = directory / name if directory is not None else None
    return path.read_bytes() if path is not None and path.is_file() else None


async def docs_page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def docs_asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = ASSETS.get(name)
    body = _asset(name) if media_type is not None else None
    if media_type is None or body is None:
        raise ProblemError(404, "no-such-route", f"There is no resource at {request.url.path}.")
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
