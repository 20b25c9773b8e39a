"""What the request middleware costs per request, in-process: no sockets, no noise from a load
generator sharing the machine. A trivial ASGI app answers ``GET /v1/jobs/{job_id}``; it is called
bare, wrapped by :class:`~vtrans.server.http.observe.Observe` without metrics (request ids only),
and with metrics (the same as ``vtrans serve`` and ``vtrans serve --no-metrics``).

Run from the repository root::

    .venv/bin/python benchmarks/observe_cost.py [--calls 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp

from vtrans.server.http.observe import Observe
from vtrans.server.metrics import Metrics

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


class _Route:
    path = "/v1/jobs/{job_id}"


ROUTE = _Route()


async def job(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    scope["route"] = ROUTE  # what Starlette's router records
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(message: MutableMapping[str, Any]) -> None:
    pass


async def _receive() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b""}


async def per_call(app: ASGIApp, calls: int) -> float:
    """Microseconds per request."""
    started = time.perf_counter()
    for _ in range(calls):
        scope = {"type": "http", "method": "GET", "path": "/v1/jobs/job_1", "headers": HEADERS}
        await app(scope, _receive, _send)
    return (time.perf_counter() - started) / calls * 1e6


async def main(calls: int, repeat: int) -> None:
    apps: list[tuple[str, ASGIApp]] = [
        ("bare app", job),
        ("Observe, --no-metrics (request ids)", Observe(job, None, False)),
        ("Observe, metrics (the default)", Observe(job, Metrics("sqlite"), False)),
    ]
    print(f"| app | µs per request (best of {repeat} runs of {calls} calls) |\n|---|---:|")
    for label, app in apps:
        best = min([await per_call(app, calls) for _ in range(repeat)])
        print(f"| {label} | {best:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeat))
