"""Server-Sent Events for one job: ``GET /v1/jobs/{id}/events``.

The stream sends ``progress`` events while the job is pending (at most one per
``progress_interval``, and only when the percentage moved), then one ``done`` event with the
terminal job, and ends. Event ids are ``p<percent>`` and ``done``; a client reconnecting with
``Last-Event-ID`` gets what it has not seen, and always the terminal event. Comments keep idle
connections alive; a stream lives at most ``max_lifetime`` (the client reconnects), and stops at
once when the client goes away or stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from vtrans.server.notifications import Notifier
from vtrans.server.simulation import State, state_at
from vtrans.server.store import Store, StoredJob


@dataclass(frozen=True)
class StreamConfig:
    progress_interval: float = 1.0
    keepalive: float = 15.0
    max_lifetime: float = 300.0
    #: A client that does not take an event within this many seconds is dropped.
    send_timeout: float = 10.0
    #: The reconnection delay suggested to clients (SSE ``retry:``), in milliseconds.
    retry_ms: int = 1000


def frame(event: str, event_id: str, data: bytes) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), event_id.encode(), data)


async def job_events(
    job: StoredJob,
    last_event_id: str | None,
    store: Store,
    notifier: Notifier,
    clock: Callable[[], float],
    encode: Callable[[StoredJob, State, float], bytes],
    config: StreamConfig,
) -> AsyncGenerator[bytes, None]:
    """The frames of one job's stream, woken by its timeline and by real events (cancel)."""
    yield b"retry: %d\n\n" % config.retry_ms
    started = last_write = clock()
    sent = last_event_id
    while True:
        job = store.get(job.id) or job
        now = clock()
        state = state_at(job.timeline, now)
        if state.result != "pending":
            yield frame("done", "done", encode(job, state, now))
            return
        event_id = f"p{int(state.progress * 100)}"
        if event_id != sent:
            yield frame("progress", event_id, encode(job, state, now))
            sent, last_write = event_id, now
        elif now - last_write >= config.keepalive:
            yield b": keep-alive\n\n"
            last_write = now
        if now - started >= config.max_lifetime:
            return
        wake = min(
            config.progress_interval,
            job.timeline.ends_at - now,
            config.keepalive - (now - last_write),
            config.max_lifetime - (now - started),
        )
        await notifier.sleep(job.id, wake)


class EventStream(Response):
    """A ``text/event-stream`` response that notices disconnects and stalled readers."""

    def __init__(self, frames: AsyncGenerator[bytes, None], send_timeout: float) -> None:
        self.frames, self.send_timeout = frames, send_timeout
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
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((streamer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streamer, watcher):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await streamer
            with contextlib.suppress(Exception):
                await self.frames.aclose()

    async def _stream(self, send: Send) -> None:
        async for chunk in self.frames:
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            await asyncio.wait_for(send(message), self.send_timeout)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
