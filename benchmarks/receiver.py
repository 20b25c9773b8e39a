"""Webhook receivers for benchmarks, on asyncio in the benchmark's own process: a fast one that
answers ``204`` as soon as a request is in and notes when each ``webhook-id`` arrived, and a
hanging one that reads requests and never answers (a receiver that holds a sender's slot until
its deadline). Neither checks signatures: the service's tests do."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import cast

from processes import HOST
from rawhttp import finished_at


@dataclass
class Deliveries:
    """What a fast receiver saw, by ``webhook-id``: first arrival, and the job's ``finished_at``."""

    arrived: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    #: Requests for a ``webhook-id`` seen before (at-least-once delivery allows them).
    repeats: int = 0
    #: Requests a hanging receiver took and never answered.
    hung: int = 0
    #: Set whenever a new ``webhook-id`` arrives.
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class _Receiver(asyncio.Protocol):
    def __init__(self, seen: Deliveries, answer: bool) -> None:
        self.seen, self.answer = seen, answer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            headers = {}
            for line in bytes(self.buffer[:end]).decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._received(headers.get("webhook-id", ""), body, now)

    def _received(self, webhook_id: str, body: bytes, now: float) -> None:
        if not self.answer:
            self.seen.hung += 1
            return
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        if webhook_id in self.seen.arrived:
            self.seen.repeats += 1
            return
        self.seen.arrived[webhook_id] = now
        self.seen.due[webhook_id] = finished_at(json.loads(body)["data"])
        self.seen.changed.set()


async def serve(seen: Deliveries, answer: bool = True) -> tuple[asyncio.AbstractServer, str]:
    """A receiver on a free port of 127.0.0.1 (answering, or hanging when ``answer`` is false);
    returns the server (close it when done) and the URL to give as ``callback_url``."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Receiver(seen, answer), HOST, 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://{HOST}:{port}/hook"


async def until(seen: Deliveries, count: int, timeout: float) -> bool:
    """Wait until ``count`` different webhooks arrived, at most ``timeout`` s; whether they did."""
    deadline = time.monotonic() + timeout
    while len(seen.arrived) < count:
        seen.changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(seen.changed.wait(), left)
        except asyncio.TimeoutError:
            return False
    return True
