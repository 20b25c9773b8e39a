"""Fault injection, for teams testing their own integration's retries against realistic trouble.

A fault is ``KIND`` or ``KIND:PARAM``. Ask for one on a single request with the header
``Vtrans-Fault: 503`` (honoured at all times: it touches only the request that carries it), or
give the service rates for random faults, reproducible with ``--seed``:
``vtrans serve --faults 503@0.05,reset@0.01,latency:2@0.1``.

Before the request is carried out (nothing changes):

``500``, ``503``    a problem answer (``503`` with ``Retry-After: 1``)
``429``             a problem answer with ``Retry-After: PARAM`` (default 1)
``reset``           the connection is reset, nothing answered
``latency``         the request waits ``PARAM`` seconds (default 1), then is carried out as usual

After it is carried out (a create has created its job — retry it with the same ``Idempotency-Key``):

``503-after``       the answer is replaced by a 503 problem that says the request was carried out
``truncate``        the answer's headers and half its body, then the connection is reset
``drip``            the answer's body trickles over ``PARAM`` seconds (default 5), a few bytes at a time

Every faulted answer carries ``Vtrans-Fault: KIND; carried-out=0|1``. Faults apply to the API
(``/v1/…`` and ``/status``), never to ``/healthz``, ``/metrics`` or the docs.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vtrans.server.faults import Fault
from vtrans.server.http.problems import problem_response

#: Where the connection's transport is, for a reset (the service's protocol puts it there).
TRANSPORT = "vtrans.transport"
_APPLIES_TO = ("/v1/", "/status")


class Faults:
    """ASGI middleware: inject the fault a request asks for, or a random one from the plan."""

    def __init__(self, app: ASGIApp, plan: Sequence[tuple[Fault, float]], seed: int | None) -> None:
        self.app, self.plan = app, tuple(plan)
        self.rng = random.Random(f"{seed}:faults") if seed is not None else random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_APPLIES_TO):
            await self.app(scope, receive, send)
            return
        asked = next((v for k, v in scope["headers"] if k == b"vtrans-fault"), None)
        try:
            fault = Fault.parse(asked.decode("latin-1")) if asked is not None else self._draw()
        except ValueError as exc:
            await problem_response(Request(scope), 400, "bad-fault", f"Vtrans-Fault: {exc}.")(
                scope, receive, send
            )
            return
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind in ("500", "503", "429"):
            await self._problem(fault, scope, receive, send, carried=False)
        elif fault.kind == "reset":
            await _reset(scope)
        elif fault.kind == "latency":
            await asyncio.sleep(fault.param)
            await self.app(scope, receive, _marked(send, fault, carried=True))
        elif fault.kind == "503-after":
            await self.app(scope, receive, _swallow)
            await self._problem(fault, scope, receive, send, carried=True)
        else:
            await self.app(scope, receive, _mangled(send, fault, scope))

    def _draw(self) -> Fault | None:
        if not self.plan:
            return None
        draw, total = self.rng.random(), 0.0
        for fault, rate in self.plan:
            total += rate
            if draw < total:
                return fault
        return None

    async def _problem(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send, *, carried: bool
    ) -> None:
        status = 503 if fault.kind == "503-after" else int(fault.kind)
        outcome = (
            "was carried out: retry it with the same Idempotency-Key" if carried else "was not carried out"
        )
        headers = {"Vtrans-Fault": f"{fault.kind}; carried-out={int(carried)}"}
        if status in (429, 503):
            headers["Retry-After"] = str(max(1, round(fault.param or 1)))
        detail = f"An injected fault ({fault.kind}): the request {outcome}."
        await problem_response(Request(scope), status, "injected-fault", detail, headers)(
            scope, receive, send
        )


def _marked(send: Send, fault: Fault, *, carried: bool) -> Send:
    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            mark = f"{fault.kind}; carried-out={int(carried)}".encode()
            message["headers"] = [*message.get("headers", []), (b"vtrans-fault", mark)]
        await send(message)

    return marked


async def _swallow(message: Message) -> None:
    pass


def _mangled(send: Send, fault: Fault, scope: Scope) -> Send:
    """``truncate``: half of the first part of the body, then a reset; ``drip``: the body a few
    bytes at a time over ``fault.param`` seconds."""
    marked = _marked(send, fault, carried=True)
    cut = False

    async def mangled(message: Message) -> None:
        nonlocal cut
        if cut:
            return  # the connection is gone: the rest of the answer has nowhere to go
        if message["type"] != "http.response.body":
            await marked(message)
            return
        body: bytes = message.get("body", b"")
        if fault.kind == "truncate":
            await marked({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            cut = True
            await _reset(scope)
            return
        pieces = [body[i : i + 8] for i in range(0, len(body), 8)] or [b""]
        pause = fault.param / len(pieces)
        for n, piece in enumerate(pieces):
            more = n < len(pieces) - 1 or bool(message.get("more_body", False))
            await marked({"type": "http.response.body", "body": piece, "more_body": more})
            if more:
                await asyncio.sleep(pause)

    return mangled


async def _reset(scope: Scope) -> None:
    """Reset the connection (an RST, not a clean close). Without a transport to reset (the
    in-process fake service), raise ``ConnectionResetError`` for its caller to turn into one."""
    transport = scope.get("extensions", {}).get(TRANSPORT)
    if transport is None:
        raise ConnectionResetError("an injected fault reset the connection")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    for _ in range(2):  # let the server see the connection lost before the app returns
        await asyncio.sleep(0)
