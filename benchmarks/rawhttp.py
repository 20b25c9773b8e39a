"""A raw HTTP/1.1 client on asyncio: one keep-alive connection per :class:`RawConnection`, nothing
between the socket and the clock (each answer is timestamped as its last byte arrives). Also the
service-side view of those connections (``/proc/net/tcp``) and the measurements built on them:
creating jobs, a single completion's lag, waiting until held requests are all read.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from processes import HOST, ServerProcess


def server_sockets(port: int) -> dict[int, int]:
    """Peer port -> receive-queue bytes of the established IPv4 sockets whose local port is ``port``."""
    suffix = f":{port:04X}"
    found: dict[int, int] = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split(None, 5)
            if fields[3] == "01" and fields[1].endswith(suffix):
                found[int(fields[2].rsplit(":", 1)[1], 16)] = int(fields[4].split(":")[1], 16)
    return found


# --- the client -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    #: ``time.time()`` when the last byte of the answer arrived.
    arrived: float

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


def finished_at(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(body["finished_at"]).replace("Z", "+00:00")).timestamp()


class RawConnection(asyncio.Protocol):
    """Requests on one keep-alive connection; each answer is timestamped as its last byte arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.local_port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.local_port = transport.get_extra_info("sockname")[1]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        while self.waiting:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(Reply(int(head[0].split()[1]), body, now))

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def send(self, request: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(request)
        return future

    def abort(self) -> None:
        while self.waiting:  # answers nobody will wait for any more
            self.waiting.popleft().cancel()
        if self.transport is not None:
            self.transport.abort()  # a reset: no TIME_WAIT left behind for 10,000 sockets


async def connect(port: int) -> RawConnection:
    _, protocol = await asyncio.get_running_loop().create_connection(RawConnection, HOST, port)
    return protocol


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def create_request(duration: float, callback_url: str | None = None) -> bytes:
    spec: dict[str, Any] = {
        "language": "es",
        "video_seconds": 60,
        "simulate": {"duration_seconds": round(duration, 6)},
    }
    if callback_url is not None:
        spec["callback_url"] = callback_url
    return request("POST", "/v1/jobs", body=json.dumps(spec).encode())


def long_poll(job_id: str, hold: int) -> bytes:
    return request("GET", f"/v1/jobs/{job_id}", {"Prefer": f"wait={hold}"})


async def create_jobs(
    port: int,
    durations: Sequence[Callable[[], float]],
    connections: int = 32,
    callback_urls: Sequence[str | None] | None = None,
) -> list[str]:
    """Create one job per entry (its duration computed just before its request, its
    ``callback_url`` from ``callback_urls``), over a few keep-alive connections; the ids in order."""
    ids: list[str] = [""] * len(durations)
    queue = collections.deque(range(len(durations)))

    async def worker() -> None:
        conn = await connect(port)
        try:
            while queue:
                i = queue.popleft()
                callback = callback_urls[i] if callback_urls is not None else None
                reply = await conn.send(create_request(durations[i](), callback))
                if reply.status != 201:
                    raise RuntimeError(f"POST /v1/jobs answered {reply.status}: {reply.body[:200]!r}")
                ids[i] = reply.json()["id"]
        finally:
            conn.abort()

    await asyncio.gather(*(worker() for _ in range(min(connections, len(durations)))))
    return ids


# --- measurements ---------------------------------------------------------------------------------


async def single_completion(port: int, duration: float) -> float:
    """Create a job of ``duration`` s and long-poll it on another connection: arrival - finished_at."""
    control, waiter = await connect(port), await connect(port)
    try:
        created = await control.send(create_request(duration))
        job_id = created.json()["id"]
        reply = await waiter.send(long_poll(job_id, 120))
        body = reply.json()
        if body.get("result") != "completed":
            raise RuntimeError(f"the probe job answered {body}")
        return reply.arrived - finished_at(body)
    finally:
        control.abort()
        waiter.abort()


async def wait_held(service: ServerProcess, ports: set[int], timeout: float) -> int:
    """Until every connection in ``ports`` has its request read by the service (an empty receive
    queue on the service's side) and the service's CPU is quiet; how many are held."""
    deadline = time.monotonic() + timeout
    held, cpu = 0, service.cpu_seconds()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        sockets = server_sockets(service.port)
        held = sum(1 for p in ports if sockets.get(p) == 0)
        now = service.cpu_seconds()
        quiet, cpu = now - cpu <= 0.25 * 0.1, now  # under 10 % of a core
        if held == len(ports) and quiet:
            break
    return held
