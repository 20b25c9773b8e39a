"""Bounds hold against any server. One that drips its headers or its body one byte at a time
(``tests/servers/drip_server.py``, a real process) never trips a per-read timeout, yet cannot hold
a wait, or a single request, past its bound; a closed port fails a call on the retry budget.
Sync and async, for every transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from conftest import awaitable, free_port
from vtrans.client import (
    AsyncClient,
    Client,
    RetryPolicy,
    TransportError,
    WaitTimeout,
    async_http_transport,
    http_transport,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

JOB_ID = "job_" + "d" * 32
#: One byte every 0.25 s: far inside the client's 10 s read timeout.
INTERVAL = 0.25
#: How late past its bound a call may return: scheduling, and the 0.25 s a last poll is granted.
MARGIN = 0.6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Client | AsyncClient]]:
    """``make(url, **kwargs)``: a client of the parametrized kind, on the transport it makes itself."""
    made: list[Client | AsyncClient] = []

    def factory(url: str, **kwargs: object) -> Client | AsyncClient:
        made.append(Client(url, **kwargs) if request.param == "sync" else AsyncClient(url, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield factory
    for client in made:
        if isinstance(client, Client):
            client.close()


def kind_of(client: Client | AsyncClient) -> str:
    return "sync" if isinstance(client, Client) else "async"


@pytest.mark.parametrize("transport", ["poll", "long-poll", "sse"])
@pytest.mark.parametrize("drip", ["headers", "body"])
async def test_a_dripping_server_cannot_hold_a_wait_past_its_deadline(
    drip_server: Callable[[str, float], str],
    make: Callable[..., Client | AsyncClient],
    drip: str,
    transport: str,
) -> None:
    client = make(drip_server(drip, INTERVAL))
    timeout = 1.5
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        await awaitable(kind_of(client), client.wait)(JOB_ID, timeout=timeout, transport=transport)
    elapsed = time.monotonic() - started
    assert timeout - 0.05 <= elapsed <= timeout + MARGIN, f"returned after {elapsed:.2f} s"
    assert caught.value.job is None  # nothing was ever read


@pytest.mark.parametrize("drip", ["headers", "body"])
async def test_the_clients_timeout_bounds_a_whole_request(
    drip_server: Callable[[str, float], str], make: Callable[..., Client | AsyncClient], drip: str
) -> None:
    """Without a deadline, ``timeout`` bounds each request's whole exchange, not each read."""
    client = make(drip_server(drip, INTERVAL), timeout=1.0, retry=RetryPolicy(attempts=1))
    started = time.monotonic()
    with pytest.raises(TransportError, match="ReadTimeout"):
        await awaitable(kind_of(client), client.get)(JOB_ID)
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed <= 1.0 + MARGIN, f"returned after {elapsed:.2f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_own_http_client_keeps_the_bound_with_vtrans_transport(
    drip_server: Callable[[str, float], str], kind: str
) -> None:
    url = drip_server("headers", INTERVAL)
    client: Client | AsyncClient
    if kind == "sync":
        client = Client(url, http_client=httpx2.Client(base_url=url, transport=http_transport()))
    else:
        client = AsyncClient(
            url, http_client=httpx2.AsyncClient(base_url=url, transport=async_http_transport())
        )
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        await awaitable(kind, client.wait)(JOB_ID, timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed <= 1.0 + MARGIN, f"returned after {elapsed:.2f} s"
    if isinstance(client, Client):
        client.close()
    else:
        await client.aclose()


@pytest.mark.parametrize(
    ("retry", "within"),
    [(RetryPolicy(budget=1.5), 1.5), (RetryPolicy.FAIL_FAST, 0.0)],
    ids=["budget", "fail-fast"],
)
async def test_a_closed_port_fails_a_call_on_the_retry_budget(
    make: Callable[..., Client | AsyncClient], retry: RetryPolicy, within: float
) -> None:
    client = make(f"http://127.0.0.1:{free_port()}", retry=retry)
    started = time.monotonic()
    with pytest.raises(TransportError, match="ConnectError"):
        await awaitable(kind_of(client), client.get)(JOB_ID)
    elapsed = time.monotonic() - started
    assert within <= elapsed <= within + 0.5, f"gave up after {elapsed:.2f} s"
