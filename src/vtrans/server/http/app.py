"""The ASGI application: the service behind its routes, started and stopped with the server."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import httpx2
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from vtrans.server.config import ServerConfig, parse_limit
from vtrans.server.errors import ServiceError
from vtrans.server.faults import parse_plan
from vtrans.server.http import openapi
from vtrans.server.http.dashboard import dashboard_asset, dashboard_page
from vtrans.server.http.docs import docs_asset, docs_page
from vtrans.server.http.faults import Faults
from vtrans.server.http.feed import job_page_events, list_webhooks, metrics_endpoint
from vtrans.server.http.observe import Observe
from vtrans.server.http.problems import (
    ProblemError,
    on_http_exception,
    on_problem,
    on_service_error,
    on_store_error,
    on_unexpected,
    problem_response,
)
from vtrans.server.http.ratelimit import RateLimited
from vtrans.server.http.routes import (
    cancel_job,
    create_job,
    get_job,
    get_job_events,
    get_status,
    get_webhook,
    get_webhook_secret,
    healthz,
    list_jobs,
    rotate_webhook_secret,
    wait_jobs,
)
from vtrans.server.metrics import Metrics
from vtrans.server.service import Service
from vtrans.server.stores import Store, StoreError, make_store

JSON = "application/json"
#: What a request that arrives while the service shuts down is told to wait, in seconds.
DRAIN_RETRY_AFTER = 1


# --- the application --------------------------------------------------------------------------


def _by_method(
    **endpoints: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint per path that dispatches on the method (HEAD as GET), so Starlette's 405
    carries the path's full ``Allow`` list rather than the first route's. On a route that takes
    every method, it answers the 405 itself."""
    allow = {"Allow": ", ".join(endpoints)}

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if method not in endpoints:
            raise HTTPException(405, headers=allow)
        return await endpoints[method](request)

    return endpoint


class _EveryMethod:
    """An endpoint that Starlette routes every method to (a plain function's route is GET only):
    an ASGI app, which is what Starlette takes a class instance for."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class App:
    """The ASGI application: the routes, and the service started and stopped with the server
    (ASGI lifespan). A service that cannot start says why in one line, without a traceback.

    Shutting down (SIGINT or SIGTERM), it drains before the server stops: held long-polls are
    answered at once with their job's state, event streams end with a ``retry:`` hint, and
    requests that still arrive get a 503 problem with ``Retry-After``.
    """

    def __init__(self, service: Service, routes: ASGIApp, metrics: Metrics | None = None) -> None:
        self.service, self.routes, self.metrics = service, routes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.service.draining and scope["type"] == "http":
            detail = "The service is shutting down; try again in a moment (another replica may answer)."
            headers = {"Retry-After": str(DRAIN_RETRY_AFTER), "Connection": "close"}
            response = problem_response(Request(scope), 503, "shutting-down", detail, headers)
            await response(scope, receive, send)
        else:
            await self.routes(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                    if self.metrics is not None:
                        await self._count_job_ends(self.metrics)
                except StoreError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                _on_exit_signals(self.service.drain)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.service.drain()
                await self.service.stop()
                if self.metrics is not None:
                    self.metrics.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _count_job_ends(self, metrics: Metrics) -> None:
        """Count jobs at their end from now on; a process that owns its store also counts the
        jobs still pending from before it started (see :mod:`vtrans.server.metrics`)."""
        service = self.service
        metrics.start(service.jobs.get)
        if not service.store.shared:
            await metrics.watch_pending(service.store, service.clock(), skip=service.status_job_id)


def _on_exit_signals(callback: Callable[[], None]) -> None:
    """Call ``callback`` on the event loop as soon as SIGINT or SIGTERM arrives, then let the
    server's own handler (installed before the app started) begin its shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue  # no server handler to chain to: leave the default

        def handler(signum: int, frame: FrameType | None, previous: Callable[..., Any] = previous) -> None:
            loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        signal.signal(sig, handler)


def create_app(
    config: ServerConfig | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    webhook_transport: httpx2.AsyncBaseTransport | None = None,
) -> App:
    """The ASGI application. Without a ``store`` it opens the one the config names; webhooks go
    to the network unless a ``webhook_transport`` takes them."""
    config = config or ServerConfig()
    store = store or make_store(config.store, config.db_path)
    metrics = Metrics(_store_system(config.store), clock) if config.metrics else None
    service = Service(config, store if metrics is None else metrics.timed(store), clock, webhook_transport)
    if metrics is not None:
        service.observer = service.outbox.observer = metrics
    spec = msgspec.json.encode(openapi.document(config))
    routes = Starlette(
        routes=[
            # Every method matches these routes in full, so that GET /v1/jobs/wait (DELETE
            # /v1/jobs/events) is a 405 here rather than a request for a job called "wait" below.
            Route("/v1/jobs/wait", _EveryMethod(_by_method(POST=wait_jobs))),
            Route("/v1/jobs/events", _EveryMethod(_by_method(GET=job_page_events))),
            # Then the hot paths: Starlette tries routes in order.
            Route("/v1/jobs/{job_id}", _by_method(GET=get_job, DELETE=cancel_job), methods=["GET", "DELETE"]),
            Route("/status", get_status, methods=["GET"]),
            Route("/v1/jobs", _by_method(GET=list_jobs, POST=create_job), methods=["GET", "POST"]),
            Route("/v1/jobs/{job_id}/events", get_job_events, methods=["GET"]),
            Route("/v1/jobs/{job_id}/webhook", get_webhook, methods=["GET"]),
            Route("/v1/webhook-secret", get_webhook_secret, methods=["GET"]),
            Route("/v1/webhook-secret/rotate", _EveryMethod(_by_method(POST=rotate_webhook_secret))),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", lambda _: Response(spec, media_type=JSON), methods=["GET"]),
            Route("/docs", docs_page, methods=["GET"]),
            Route("/docs/assets/{name}", docs_asset, methods=["GET"]),
            Route("/", dashboard_page, methods=["GET"]),
            Route("/dashboard/{name}", dashboard_asset, methods=["GET"]),
            Route("/v1/webhooks", list_webhooks, methods=["GET"]),
            *_metrics_route(metrics),
        ],
        exception_handlers={
            ProblemError: on_problem,
            ServiceError: on_service_error,
            StoreError: on_store_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )
    routes.state.service = service
    http: ASGIApp = Faults(routes, parse_plan(config.faults), config.seed)
    if config.rate_limit is not None:
        http = RateLimited(http, parse_limit(config.rate_limit), service.tenants)
    return App(service, Observe(http, metrics, config.access_log), metrics)


def _metrics_route(metrics: Metrics | None) -> list[Route]:
    """``GET /metrics`` when metrics are kept (a 404 problem otherwise)."""
    if metrics is None:
        return []

    async def endpoint(request: Request) -> Response:  # on the event loop, like the counting
        return metrics_endpoint(metrics)

    return [Route("/metrics", endpoint, methods=["GET"])]


def _store_system(spec: str) -> str:
    """The store's ``db.system.name`` (OpenTelemetry): ``sqlite``, ``postgresql`` or ``memory``."""
    return "postgresql" if spec.startswith("postgres") else spec
