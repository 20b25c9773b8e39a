"""The routes the dashboard reads: a live page of jobs (one event stream for the whole page),
recent webhook deliveries, and the metrics. Same keys and rules as the rest of ``/v1``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from vtrans.server import feed
from vtrans.server.http.events import KEEPALIVE, EventStream
from vtrans.server.http.routes import JSONBytes, _int_param, _param, _service, _tenant, listing
from vtrans.server.metrics import CONTENT_TYPE, Metrics


async def job_page_events(request: Request) -> Response:
    """Server-Sent Events: ``page`` events, each the listing ``GET /v1/jobs`` would answer now
    (same ``result``, ``limit``, ``cursor``) with ``counts`` by result: the caller's jobs only."""
    service, tenant = _service(request), _tenant(request)
    limit, result, cursor = listing(request)
    await service.list_jobs(result, 1, cursor, tenant=tenant)  # a bad cursor: a 400 now
    stream = service.config.stream
    pages = feed.snapshots(service, result, limit, cursor, tenant=tenant)
    return EventStream(_frames(pages, stream.retry_ms), stream.send_timeout)


async def _frames(pages: AsyncIterator[bytes | None], retry_ms: int) -> AsyncIterator[bytes]:
    retry = b"retry: %d\n\n" % retry_ms
    yield retry
    async for page in pages:
        yield KEEPALIVE if page is None else b"event: page\ndata: %s\n\n" % page
    yield retry


async def list_webhooks(request: Request) -> Response:
    """The webhook deliveries of the caller's newest jobs that have a ``callback_url``."""
    service, tenant = _service(request), _tenant(request)
    limit = _int_param(_param(request, "limit", "20"), "limit", 1, 100)
    return JSONBytes(msgspec.json.encode(await feed.recent_webhooks(service, limit, tenant=tenant)))


def metrics_endpoint(metrics: Metrics) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
