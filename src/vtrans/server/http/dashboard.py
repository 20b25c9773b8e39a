"""``/``: the live dashboard, a page and its script and style, all served from this package (no
external asset). It reads the API with the visitor's key like any client: see ``static/``."""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from vtrans.server.http.problems import ProblemError

FILES = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@cache
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static").joinpath(name).read_bytes()


def _file(name: str) -> Response:
    return Response(_read(name), media_type=FILES[name], headers={"Cache-Control": "no-cache"})


async def dashboard_page(request: Request) -> Response:
    return _file("dashboard.html")


async def dashboard_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES or name == "dashboard.html":
        raise ProblemError(404, "no-such-route", f"There is no resource at {request.url.path}.")
    return _file(name)
