"""The throughput baseline: a bare Starlette hello world answering ``{"result":"pending"}``.

Serve it as ``uvicorn --app-dir benchmarks hello_app:app --http httptools --loop uvloop --no-access-log``;
``benchmarks/throughput.py`` does that for you and compares the service against it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def status(request: Request) -> JSONResponse:
    return JSONResponse({"result": "pending"})


app = Starlette(routes=[Route("/status", status, methods=["GET"])])
