"""A spec-literal ``GET /status`` server, with injectable faults: what a client meets in the wild.

Standard library only. It serves exactly what the original task statement fixes and nothing else::

    GET /status  ->  200  Content-Type: application/json  {"result": "pending"}

until ``--delay`` seconds (or a uniform draw in [``--delay-min``, ``--delay-max``]) have passed since
it started, then ``{"result": "completed"}`` (or ``"error"`` with ``--result error``) forever. No
``Retry-After``, no other field, no long-poll (``Prefer`` is ignored), no other route (404), no
other method (405). Keep-alive HTTP/1.1.

Run::

    python -m tests.servers.spec_server --port 0 --delay 1.5
    python -m tests.servers.spec_server --port 8123 --delay-min 2 --delay-max 8 --seed 7 --result error
    python -m tests.servers.spec_server --port 0 --delay 1 --faults "500x3,html x2,reset,429x2:retry-after=1"

Once listening it prints one line to stdout, then logs each request to stderr::

    ready port=8123 delay=4.127 result=error started=1767000000.123456

(``started`` is ``time.time()`` at start-up: the answer turns terminal at ``started + delay``.)

Faults (``--faults SPEC``)
--------------------------
``SPEC`` is a comma-separated schedule of items ``KIND[xN][:option=value...]``, consumed in order
by the requests as they arrive (every request counts, whatever its path): ``500x3,htmlx2`` makes
requests 1-3 answer 500, requests 4-5 an HTML page, and every later request the normal answer.
``xN`` repeats the item N times (default 1; spaces are allowed, ``html x2``); ``x*`` repeats it
forever (the rest of the schedule is then never reached). Kinds:

``NNN``      an HTTP status (``500``, ``502``, ``503``, ``504``, ``429``...) with a small HTML body;
             option ``retry-after=S`` adds ``Retry-After: S``
``html``     ``200`` with ``Content-Type: text/html`` and an HTML error page (a captive proxy)
``json``     ``200`` ``application/json`` whose body is not valid JSON (``{"result": "pend``)
``unknown``  ``200`` ``{"result": "processing"}``: valid JSON, a result the spec does not have
``empty``    ``200`` ``application/json`` with an empty body
``reset``    read the request, then reset the connection without answering (``SO_LINGER`` 0)
``stall``    read the request and never answer; option ``seconds=S`` (default 30) closes the
             connection after S seconds
``ok``       the normal answer (to place faults later in the schedule: ``ok x2,stall``)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from . import serve_until_signalled

KINDS = ("html", "json", "unknown", "empty", "reset", "stall", "ok")
FOREVER = -1
ERROR_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
    "<body><h1>{status} {reason}</h1><hr><p>nginx</p></body></html>\n"
)
REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS, or a status code as digits
    times: int = 1  # FOREVER for x*
    options: dict[str, str] = field(default_factory=dict)


_ITEM = re.compile(r"^(?P<kind>[a-z]+|\d{3})\s*(?:x\s*(?P<times>\d+|\*))?(?P<options>(?::[a-z-]+=[^:,]*)*)$")


def parse_faults(spec: str) -> list[Fault]:
    """Parse a fault schedule (see the module docstring); raise ``ValueError`` if it is not one."""
    faults = []
    for raw in spec.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"not a fault: {raw.strip()!r} (expected KIND[xN][:option=value])")
        kind = match["kind"]
        if not kind.isdigit() and kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: use a status code or one of {', '.join(KINDS)}")
        if kind.isdigit() and not 100 <= int(kind) <= 599:
            raise ValueError(f"not an HTTP status: {kind}")
        times = match["times"]
        count = FOREVER if times == "*" else int(times or 1)
        options = dict(opt.split("=", 1) for opt in match["options"].split(":") if opt)
        faults.append(Fault(kind, count, options))
    return faults


class Schedule:
    """Hands out the fault for each request in arrival order; ``None`` means answer normally."""

    def __init__(self, faults: list[Fault]) -> None:
        self.faults, self.index, self.used = list(faults), 0, 0

    def next(self) -> Fault | None:
        while self.index < len(self.faults):
            fault = self.faults[self.index]
            if fault.times == FOREVER or self.used < fault.times:
                self.used += 1
                return fault
            self.index, self.used = self.index + 1, 0
        return None


class SpecServer:
    def __init__(self, delay: float, result: str, faults: list[Fault]) -> None:
        self.started_wall, self.started = time.time(), time.monotonic()
        self.delay, self.result = delay, result
        self.schedule = Schedule(faults)
        self.requests = 0

    def status(self) -> str:
        return self.result if time.monotonic() - self.started >= self.delay else "pending"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection (or only probed the port)
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" "), "", "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length):
            await reader.readexactly(int(length))
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        self.requests += 1
        fault = self.schedule.next()
        path = target.split("?", 1)[0]
        print(
            f"#{self.requests} {method} {target} -> {fault.kind if fault else self.status()}", file=sys.stderr
        )

        if fault is not None and fault.kind == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(float(fault.options.get("seconds", "30")))
            return False

        extra: dict[str, str] = {}
        if fault is None or fault.kind == "ok":
            if path != "/status":
                status, ctype, body = 404, "text/plain", b"Not Found\n"
            elif method != "GET":
                status, ctype, body = 405, "text/plain", b"Method Not Allowed\n"
                extra["Allow"] = "GET"
            else:
                status, ctype = 200, "application/json"
                body = json.dumps({"result": self.status()}).encode()
        elif fault.kind.isdigit():
            status, ctype = int(fault.kind), "text/html"
            reason = REASONS.get(status, "Error")
            body = ERROR_PAGE.format(status=status, reason=reason).encode()
            if "retry-after" in fault.options:
                extra["Retry-After"] = fault.options["retry-after"]
        elif fault.kind == "html":
            status, ctype, body = 200, "text/html", ERROR_PAGE.format(status=200, reason="OK").encode()
        elif fault.kind == "json":
            status, ctype, body = 200, "application/json", b'{"result": "pend'
        elif fault.kind == "unknown":
            status, ctype, body = 200, "application/json", b'{"result": "processing"}'
        else:  # empty
            status, ctype, body = 200, "application/json", b""

        reason = REASONS.get(status, "Unknown")
        out = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        out += [f"{name}: {value}" for name, value in extra.items()]
        out.append("Connection: keep-alive" if keep_alive else "Connection: close")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return keep_alive


async def serve(args: argparse.Namespace) -> None:
    if args.delay is not None:
        delay = args.delay
    else:
        delay = random.Random(args.seed).uniform(args.delay_min, args.delay_max)
    app = SpecServer(delay, args.result, parse_faults(args.faults))
    server = await asyncio.start_server(app.handle, args.host, args.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(
        f"ready port={port} delay={delay:.6f} result={args.result} started={app.started_wall:.6f}", flush=True
    )
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.spec_server",
        description="A spec-literal GET /status server with injectable faults.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed when ready)")
    parser.add_argument("--delay", type=float, help="seconds pending after start (sets min and max)")
    parser.add_argument("--delay-min", type=float, default=5.0)
    parser.add_argument("--delay-max", type=float, default=15.0)
    parser.add_argument("--seed", type=int, help="makes the random delay reproducible")
    parser.add_argument("--result", choices=("completed", "error"), default="completed")
    parser.add_argument("--faults", default="", help="fault schedule, e.g. '500x3,html x2,reset'")
    args = parser.parse_args(argv)
    if args.delay is None and not 0 <= args.delay_min <= args.delay_max:
        parser.error("need 0 <= --delay-min <= --delay-max")
    try:
        parse_faults(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
