"""Server-Sent Events on the wire: the frames of a job's stream, and a response that notices
disconnects and stalled readers. What to send when is the service's (:meth:`Service.events`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vtrans.server.http.disconnect import disconnected
from vtrans.server.service import Event

KEEPALIVE = b": keep-alive\n\n"


def frame(event: str, event_id: str, data: bytes) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), event_id.encode(), data)


async def frames(events: AsyncIterator[Event], retry_ms: int) -> AsyncIterator[bytes]:
    """The stream's bytes: a ``retry:`` hint, then one frame per event."""
    retry = b"retry: %d\n\n" % retry_ms
    yield retry
    async for event in events:
        if event.kind == "reconnect":
            yield retry  # the stream ends before the job: come back (elsewhere) after this
        elif event.view is None:
            yield KEEPALIVE
        else:
            yield frame(event.kind, event.id, msgspec.json.encode(event.view.wire()))


class EventStream(Response):
    """A ``text/event-stream`` response that stops as soon as the client goes away or stops reading."""

    def __init__(self, chunks: AsyncIterator[bytes], send_timeout: float) -> None:
        self.chunks, self.send_timeout = chunks, send_timeout
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        streamer = asyncio.ensure_future(self._stream(send))
        watcher = asyncio.ensure_future(disconnected(receive))
        try:
            await asyncio.wait((streamer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streamer, watcher):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await streamer
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _stream(self, send: Send) -> None:
        async for chunk in self.chunks:
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            await asyncio.wait_for(send(message), self.send_timeout)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
