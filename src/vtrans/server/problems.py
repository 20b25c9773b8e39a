"""RFC 9457 problem responses: every error the service answers is one of these."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from vtrans.protocol import PROBLEM_JSON, Problem, problem_type

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
}


class ProblemError(Exception):
    """Raise from a route to answer a problem; ``code`` names the kind (``urn:vtrans:problem:*``)."""

    def __init__(self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def problem_response(
    request: Request, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = Problem(
        type=problem_type(code),
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
    )
    return Response(msgspec.json.encode(body), status, headers, media_type=PROBLEM_JSON)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc.status, exc.code, exc.detail, exc.headers)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) as problems."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = f"There is no resource at {request.url.path}."
        return problem_response(request, 404, "no-such-route", detail)
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(request, 405, "method-not-allowed", detail, exc.headers)
    return problem_response(request, exc.status_code, "http-error", str(exc.detail), exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal", "The service failed unexpectedly.")
