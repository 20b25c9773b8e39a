"""The real service in your process, on virtual time: test code that creates, waits for, cancels
and lists translations, instantly and realistically.

    from vtrans.testing import FakeService

    with FakeService(seed=1) as fake:
        client = fake.client()  # or fake.async_client()
        job = client.create("es", video_seconds=600)  # a job of about 2.5 minutes
        done = client.wait(job.id)  # returns at once: time is virtual
        assert fake.webhooks == []  # no callback_url: no webhook

It is the service's own routes, simulation and rules (an in-memory store), called in-process with
no socket. Its clock and its clients' clock are one :class:`~vtrans.client.clock.VirtualClock`:
whenever everything waits (a client's sleep, a long-poll's hold), time jumps to the next thing that
happens. Requests are served one at a time, in the order they arrive. Webhooks are not sent: each
is kept, signed as it would have gone out, in :attr:`FakeService.webhooks`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Coroutine, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx2
import msgspec

from vtrans.client import AsyncClient, Client
from vtrans.client.clock import VirtualClock
from vtrans.protocol import WebhookEvent
from vtrans.server.config import ServerConfig
from vtrans.server.http import App, create_app
from vtrans.server.simulation import SimulationConfig
from vtrans.server.stores.memory import MemoryStore
from vtrans.testing.loop import VirtualTimeLoop

T = TypeVar("T")
BASE_URL = "http://vtrans.fake"


@dataclass(frozen=True)
class Webhook:
    """A webhook the service would have sent: where, its signed headers, and its event."""

    url: str
    headers: dict[str, str]
    body: bytes
    event: WebhookEvent


class FakeService:
    """The service in-process on virtual time; see the module's documentation.

    ``simulation`` and ``seed`` shape the jobs as ``vtrans serve``'s flags do (by default the
    sandbox's realistic timelines, reproducible with ``seed``); ``config`` sets anything else.
    """

    def __init__(
        self,
        *,
        seed: int | None = 0,
        simulation: SimulationConfig | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        base = config or ServerConfig(store="memory")
        self.config = ServerConfig(
            **{**base.__dict__, "store": "memory", "seed": seed if config is None else base.seed}
        )
        if simulation is not None:
            self.config = ServerConfig(**{**self.config.__dict__, "simulation": simulation})
        self.clock = VirtualClock()
        self._epoch = time.time() - self.clock.now()
        #: Every webhook the service would have sent, in order.
        self.webhooks: list[Webhook] = []
        self._loop = VirtualTimeLoop(self.clock)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vtrans-fake")
        self._closed = False
        self.app: App = create_app(self.config, MemoryStore(), self.now, httpx2.MockTransport(self._capture))
        self._run(self.app.service.start())

    def now(self) -> float:
        """The service's time (Unix seconds, virtual)."""
        return self._epoch + self.clock.now()

    @property
    def webhook_secret(self) -> str:
        """The secret that signs its webhooks (for :func:`vtrans.webhooks.verify`)."""
        return self._run(self.app.service.tenants.secrets("")).secret

    # --- clients ------------------------------------------------------------------------------

    def client(self, **options: Any) -> Client:
        """A :class:`~vtrans.Client` wired to this service (``options`` as for ``Client``)."""
        http = httpx2.Client(base_url=BASE_URL, transport=_SyncTransport(self))
        return Client(BASE_URL, clock=self.clock, http_client=http, **options)

    def async_client(self, **options: Any) -> AsyncClient:
        """An :class:`~vtrans.AsyncClient` wired to this service."""
        http = httpx2.AsyncClient(base_url=BASE_URL, transport=_AsyncTransport(self))
        return AsyncClient(BASE_URL, clock=self.clock, http_client=http, **options)

    # --- time ---------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, and the service do what falls due (webhooks)."""
        self.clock.sleep(seconds)
        self.settle()

    def settle(self) -> None:
        """Let the service finish what is due now (send the webhooks of jobs that ended)."""
        self._run(self._settle())

    async def _settle(self) -> None:
        outbox = self.app.service.outbox
        for _ in range(10_000):
            if await outbox.idle():
                return
            await asyncio.sleep(0)

    # --- the service's thread -----------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._thread.submit(self._loop.run_until_complete, work).result()

    def _submit(self, work: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return asyncio.wrap_future(self._thread.submit(self._loop.run_until_complete, work))

    async def _serve(self, request: httpx2.Request, body: bytes) -> httpx2.Response:
        """Call the app with ``request`` as ASGI; the whole answer, once it is complete."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 0),
            "server": ("vtrans.fake", 80),
            "state": {},
        }
        done = asyncio.get_running_loop().create_future()
        sent_body = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done  # the client stays until the answer is complete
            return {"type": "http.disconnect"}

        status, headers, chunks = 500, [], []

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and not done.done():
                    done.set_result(None)

        try:
            await self.app(scope, receive, send)
        except ConnectionResetError as exc:  # an injected reset or truncation (Vtrans-Fault)
            raise httpx2.ReadError(str(exc), request=request) from None
        finally:
            if not done.done():
                done.set_result(None)
        return httpx2.Response(status, headers=headers, content=b"".join(chunks))

    def _capture(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        event = msgspec.json.decode(body, type=WebhookEvent)
        self.webhooks.append(Webhook(str(request.url), dict(request.headers), body, event))
        return httpx2.Response(204)

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the service and its thread; closing it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._run(self.app.service.stop())
        self._thread.submit(self._loop.close).result()
        self._thread.shutdown()

    def __enter__(self) -> FakeService:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _SyncTransport(httpx2.BaseTransport):
    def __init__(self, fake: FakeService) -> None:
        self.fake = fake

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.fake._run(self.fake._serve(request, request.read()))


class _AsyncTransport(httpx2.AsyncBaseTransport):
    def __init__(self, fake: FakeService) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        return await self.fake._submit(self.fake._serve(request, body))
