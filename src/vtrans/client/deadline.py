"""Whole-exchange deadlines: no server, however slowly it answers, holds a request past its budget.

httpx2's timeouts bound each socket operation, not the exchange: a server that sends one byte every
few seconds never trips a read timeout, and holds the caller for as long as it likes. So the
transports the clients make themselves run on a network backend that cuts every socket operation
(connect, TLS, write, read) to what is left before the deadline of the exchange in progress, and
fails it with a timeout once nothing is left. The deadline is a context variable set around the
exchange by the driver (:func:`bounded`), so it follows the request into httpcore2, in the calling
thread (sync) or task (async), and nothing else.

A client given its own ``http_client`` keeps these bounds only if that client's transport comes
from :func:`http_transport` or :func:`async_http_transport`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore2
import httpx2

log = logging.getLogger("vtrans.client")

#: ``time.monotonic()`` by which the exchange in progress must be over (``inf``: no bound).
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("vtrans_deadline", default=math.inf)


@contextlib.contextmanager
def bounded(deadline: float) -> Iterator[None]:
    """Run the block's socket operations under ``deadline`` (``time.monotonic()``; ``inf``: none)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _cut(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the deadline; ``error`` if nothing is."""
    deadline = _deadline.get()
    if deadline == math.inf:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's time budget ran out")
    return left if timeout is None else min(timeout, left)


def events(response: httpx2.Response, deadline: float) -> Iterator[httpx2.ServerSentEvent]:
    """The response's Server-Sent Events, each read under ``deadline``."""
    source = iter(httpx2.EventSource(response))
    while True:
        with bounded(deadline):
            event = next(source, None)
        if event is None:
            return
        yield event


async def aevents(response: httpx2.Response, deadline: float) -> AsyncIterator[httpx2.ServerSentEvent]:
    """The response's Server-Sent Events, each read under ``deadline`` (asyncio)."""
    source = aiter(httpx2.EventSource(response))
    while True:
        with bounded(deadline):
            event = await anext(source, None)
        if event is None:
            return
        yield event


# --- sync -------------------------------------------------------------------------------------


class _Stream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _cut(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _cut(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, cut))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, cut, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, cut, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# --- async ------------------------------------------------------------------------------------


class _AsyncStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _cut(timeout, httpcore2.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _cut(timeout, httpcore2.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self._stream.start_tls(ssl_context, server_hostname, cut))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, backend: httpcore2.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_tcp(host, port, cut, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_unix_socket(path, cut, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# --- the transports ---------------------------------------------------------------------------


def http_transport(**kwargs: Any) -> httpx2.HTTPTransport:
    """An ``httpx2.HTTPTransport`` (same arguments) whose socket operations keep vtrans deadlines."""
    transport = httpx2.HTTPTransport(**kwargs)
    _wrap_backend(transport, _Backend)
    return transport


def async_http_transport(**kwargs: Any) -> httpx2.AsyncHTTPTransport:
    """An ``httpx2.AsyncHTTPTransport`` (same arguments) whose socket operations keep vtrans deadlines."""
    transport = httpx2.AsyncHTTPTransport(**kwargs)
    _wrap_backend(transport, _AsyncBackend)
    return transport


def _wrap_backend(transport: object, wrapper: Any) -> None:
    # httpx2 takes no network backend, but its pool keeps the one it hands each new connection.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # pragma: no cover - only if httpx2's internals change
        log.warning("this httpx2 cannot bound whole exchanges: only each read is bounded")
        return
    pool._network_backend = wrapper(backend)  # type: ignore[union-attr]
