"""RFC 9457 problem responses: every error the service answers is one of these."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from vtrans.protocol import PROBLEM_JSON, Problem, format_retry_after, problem_type
from vtrans.server import errors
from vtrans.server.logs import REQUEST_ID_KEY

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
    503: "Service Unavailable",
}
#: The status of each kind of refusal of the service layer.
STATUS: dict[type[errors.ServiceError], int] = {
    errors.Malformed: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.Unavailable: 503,
}
#: How long to ask clients to wait when the store fails.
STORE_RETRY_AFTER = 2


class ServiceProblem(Problem, frozen=True, omit_defaults=True):
    """A problem with the request's id as an extension member (RFC 9457 §3.2), to quote in a
    support request or to find the request's log lines."""

    request_id: str | None = None


class ProblemError(Exception):
    """Raise from a route to answer a problem; ``code`` names the kind (``urn:vtrans:problem:*``)."""

    def __init__(self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def problem_response(
    request: Request, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = ServiceProblem(
        type=problem_type(code),
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request.scope.get(REQUEST_ID_KEY),
    )
    return Response(msgspec.json.encode(body), status, headers, media_type=PROBLEM_JSON)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc.status, exc.code, exc.detail, exc.headers)


async def on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ServiceError)
    headers = None if exc.retry_after is None else {"Retry-After": format_retry_after(exc.retry_after)}
    return problem_response(request, STATUS.get(type(exc), 400), exc.code, exc.detail, headers)


async def on_store_error(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: the store failed: %s", request.method, request.url.path, exc)
    detail = "The service cannot reach its store right now; try again shortly."
    return problem_response(
        request, 503, "store-unavailable", detail, {"Retry-After": str(STORE_RETRY_AFTER)}
    )


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
