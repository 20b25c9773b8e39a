"""The ASGI middleware that watches every request: its id, its metrics, its access-log line.

The request id is the client's ``X-Request-Id`` when it is 1 to 128 visible ASCII characters
(anything else is replaced, not refused), or a new one; it is echoed in the response's
``X-Request-Id``, in problem bodies (``request_id``) and in log lines. Requests are timed by
route template (``http_route``), never by raw path. Long-polls (``Prefer: wait``), batch waits and
event streams last as long as they are held, so they go to a metric of their own.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vtrans.server.logs import CURRENT_REQUEST, REQUEST_ID_KEY
from vtrans.server.metrics import Metrics

access = logging.getLogger("vtrans.access")

_VALID_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_HEADER = b"x-request-id"


def _new_ids() -> Any:
    """Request ids made here: random per process, then a counter (cheaper than a UUID each)."""
    prefix = os.urandom(6).hex().encode()
    return (b"%s-%x" % (prefix, n) for n in itertools.count(1))


def request_kind(method: str, path: str, prefer: bytes | None) -> str | None:
    """Which kind of held request this is (``long-poll``, ``batch``, ``stream``), if any."""
    if method == "GET" and path.endswith("/events"):
        return "stream"
    if prefer is not None and b"wait" in prefer:
        return "batch" if path == "/v1/jobs/wait" else "long-poll"
    return None


class Observe:
    """Wraps the routes: request ids always; metrics unless ``metrics`` is ``None``; an access
    line per request (``vtrans.access``, INFO) when ``access_log``."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, access_log: bool) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log
        self._children: dict[tuple[str, str, int], Any] = {}
        self._held_children: dict[tuple[str, str, int], Any] = {}
        self._ids = _new_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = prefer = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                request_id = value if _VALID_ID.fullmatch(value) else None
            elif key == b"prefer":
                prefer = value
        rid = request_id or next(self._ids)
        scope[REQUEST_ID_KEY] = rid.decode()
        header = (_HEADER, rid)
        status = 500
        location = b""

        async def send_with_id(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                if status == 201 and self.access_log:  # a created job's id, for its access line
                    location = next((v for k, v in headers if k == b"location"), b"")
                message["headers"] = [*headers, header]
            await send(message)

        token = CURRENT_REQUEST.set(scope)
        metrics, method = self.metrics, scope["method"]
        kind = request_kind(method, scope["path"], prefer) if metrics is not None else None
        if metrics is not None:  # plain counts: the gauges are set from them (Metrics.sync_gauges)
            in_flight = metrics.in_flight
            in_flight[method] = in_flight.get(method, 0) + 1
            if kind is not None:
                metrics.held_now[kind] += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            if metrics is not None:
                in_flight[method] -= 1
                self._record(metrics, scope, method, kind, status, duration)
            if self.access_log:
                self._log(scope, method, status, duration, location)
            CURRENT_REQUEST.reset(token)

    def _record(
        self, metrics: Metrics, scope: Scope, method: str, kind: str | None, status: int, duration: float
    ) -> None:
        route = scope.get("route")
        template = route.path if route is not None else ""
        if kind is None:
            key = (method, template, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = metrics.requests.labels(method, template, status)
        else:
            metrics.held_now[kind] -= 1
            key = (kind, template, status)
            child = self._held_children.get(key)
            if child is None:
                child = self._held_children[key] = metrics.held_duration.labels(kind, template, status)
        child.observe(duration)

    def _log(self, scope: Scope, method: str, status: int, duration: float, location: bytes) -> None:
        path = scope["path"]
        query = scope.get("query_string", b"")
        target = f"{path}?{query.decode('latin-1')}" if query else path
        extra: dict[str, Any] = {"status": status, "duration_ms": round(duration * 1000, 3)}
        if location.startswith(b"/v1/jobs/"):
            extra["job_id"] = location.rsplit(b"/", 1)[1].decode("latin-1")
        access.info("%s %s %d %.1fms", method, target, status, duration * 1000, extra=extra)
