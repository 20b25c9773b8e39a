"""A hostile HTTP server that answers every request one byte at a time: a slow-loris aimed at clients.

Standard library only. Whatever the request, it answers ``200`` so slowly that no per-read timeout
ever fires: one byte every ``--interval`` seconds, for at most ``--max-seconds`` per connection.

``--drip headers``  the status line at once, then an endless header (``X-Drip: aaaa…``), dripped:
                    the response's headers never end.
``--drip body``     the whole header block at once (``Content-Type: application/json``, or
                    ``text/event-stream`` for a path ending in ``/events``; no length, so the body
                    runs until the connection closes), then a body that never completes a JSON
                    document nor an event, dripped.

Run::

    python -m tests.servers.drip_server --port 0 --drip headers --interval 0.25

Once listening it prints one line to stdout (``ready port=8123 drip=headers interval=0.25``), then
logs each request to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

from . import serve_until_signalled

MODES = ("headers", "body")


async def drip(writer: asyncio.StreamWriter, data: bytes, interval: float, until: float) -> None:
    """Write ``data`` one byte at a time, then ``a`` forever, until ``until`` (monotonic)."""
    for byte in data:
        if time.monotonic() >= until:
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(interval)
    while time.monotonic() < until:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(interval)


class DripServer:
    def __init__(self, mode: str, interval: float, max_seconds: float) -> None:
        self.mode, self.interval, self.max_seconds = mode, interval, max_seconds

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        until = time.monotonic() + self.max_seconds
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            print(f"{time.time():.3f} {request_line}", file=sys.stderr, flush=True)
            path = request_line.split(" ")[1] if " " in request_line else "/"
            if self.mode == "headers":
                writer.write(b"HTTP/1.1 200 OK\r\n")
                await drip(writer, b"X-Drip: ", self.interval, until)
            else:
                stream = path.split("?")[0].endswith("/events")
                ctype = "text/event-stream" if stream else "application/json"
                head = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n"
                writer.write(head.encode())
                await drip(writer, b": " if stream else b'{"result": "pending", "x": "', self.interval, until)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def serve(args: argparse.Namespace) -> None:
    app = DripServer(args.drip, args.interval, args.max_seconds)
    server = await asyncio.start_server(app.handle, args.host, args.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"ready port={port} drip={args.drip} interval={args.interval}", flush=True)
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.drip_server",
        description="An HTTP server that drips its answers one byte at a time.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed when ready)")
    parser.add_argument("--drip", choices=MODES, required=True, help="what to drip: the headers or the body")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two bytes")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest answer, per connection")
    args = parser.parse_args(argv)
    if not (args.interval > 0 and args.max_seconds > 0):
        parser.error("--interval and --max-seconds must be > 0")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
