"""Connection hygiene: uvicorn's httptools protocol with the bounds it lacks.

uvicorn closes an idle keep-alive connection, but not one that never finishes its request: a
client that sends nothing, or one header byte a second (slowloris), or a body that never ends,
holds its connection for ever; and it takes headers of any size. This protocol bounds each:

- the request line and headers must all arrive within ``header_timeout`` of the request's first
  byte (or of the connection, for a client that sends nothing): else ``408``, closed;
- the body within ``body_timeout`` of the headers: else ``408``, closed;
- the request line at most ``max_url_bytes`` (``414``), the headers ``max_header_bytes`` (``431``);
- a request that is not HTTP/1.1 (a control byte in a header, say) gets ``400``, closed;
- at most ``max_connections`` open connections per process: the next one gets ``503`` with
  ``Retry-After`` and is closed, rather than everyone getting slower.

Every refusal is an RFC 9457 problem, sent before the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vtrans.protocol import PROBLEM_JSON, Problem, problem_type
from vtrans.server.config import ConnectionConfig
from vtrans.server.http.faults import TRANSPORT

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class _Refused(Exception):
    """Stops the parser: the request was refused and the connection is closing."""


#: What a connection is waiting for, and how long it may: nothing (a request being answered, or an
#: idle keep-alive connection, which uvicorn closes itself), its headers, or its body.
IDLE, HEADERS, BODY = 0, 1, 2
_LATE = {
    HEADERS: "The request's headers did not arrive in time.",
    BODY: "The request's body did not arrive in time.",
}


class GuardedProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with the bounds above (set :attr:`limits` before serving).

    The timeouts cost a timestamp per request: one sweep a second (per event loop) looks at every
    connection, rather than a timer armed and cancelled for each request.
    """

    limits = ConnectionConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase, self._since = HEADERS, 0.0
        self._header_bytes = 0
        self._url_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.loop.time()
        _sweep_on(self.loop, self.connections, self.limits)
        if len(self.connections) > self.limits.max_connections:
            detail = "The service holds as many connections as it can; try again shortly."
            self._refuse(503, "too-many-connections", detail)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, but one of our refusals is not logged as an invalid request."""
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._refused:
                self.logger.info("refused a request that is not HTTP/1.1: %s", exc)
                detail = f"The request is not well-formed HTTP/1.1 ({exc})."
                self._refuse(400, "malformed-request", detail)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = self._url_bytes = 0
        self._phase, self._since = HEADERS, self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            detail = f"The request line is longer than {self.limits.max_url_bytes} bytes."
            self._refuse(414, "uri-too-long", detail)
            raise _Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            detail = f"The request's headers are larger than {self.limits.max_header_bytes} bytes."
            self._refuse(431, "headers-too-large", detail)
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase, self._since = BODY, self.loop.time()
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions[TRANSPORT] = self.transport  # for an injected reset
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = IDLE
        super().on_message_complete()

    def shutdown(self) -> None:
        """The server is stopping: a request still arriving gets a 503 problem now (its client
        may try another replica) rather than a 500 when the server gives up waiting for it."""
        arriving = self._phase == BODY or (self._phase == HEADERS and self._header_bytes + self._url_bytes)
        if arriving and not (self.cycle is not None and self.cycle.response_started):
            self._refuse(503, "shutting-down", "The service is shutting down; send the request again.")
            return
        super().shutdown()

    def overdue(self, now: float) -> None:
        """Cut the connection off if what it waits for is late (the sweep calls this)."""
        if self._phase == IDLE or self._refused:
            return
        limit = self.limits.header_timeout if self._phase == HEADERS else self.limits.body_timeout
        if now - self._since < limit:
            return
        if self.cycle is not None and not self.cycle.response_complete and self.cycle.response_started:
            self.transport.close()  # the app is answering: nothing can be said any more
            return
        self._refuse(408, "request-timeout", _LATE[self._phase])

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer a problem and close the connection."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = msgspec.json.encode(
            Problem(type=problem_type(code), title=_REASONS[status].decode(), status=status, detail=detail)
        )
        head = [b"HTTP/1.1 %d %s" % (status, _REASONS[status]), b"content-type: " + PROBLEM_JSON.encode()]
        head += [b"content-length: %d" % len(body), b"connection: close"]
        if status == 503:
            head.append(b"retry-after: 1")
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


#: The event loops with a sweep running (one per process, in practice).
_swept: set[asyncio.AbstractEventLoop] = set()


def _sweep_on(loop: asyncio.AbstractEventLoop, connections: set[Any], limits: ConnectionConfig) -> None:
    """Make sure ``connections`` are looked at every second (or at a quarter of the shortest
    timeout) on ``loop``, for as long as the loop runs."""
    if loop in _swept:
        return
    _swept.add(loop)
    period = min(1.0, limits.header_timeout / 4, limits.body_timeout / 4)

    def sweep() -> None:
        if loop.is_closed():
            _swept.discard(loop)
            return
        now = loop.time()
        for connection in tuple(connections):
            if isinstance(connection, GuardedProtocol):
                connection.overdue(now)
        loop.call_later(period, sweep)

    loop.call_later(period, sweep)
