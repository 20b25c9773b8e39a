"""Both clients against the spec-literal server (``tests/servers/spec_server.py``), real HTTP.

The server knows only ``GET /status``: no hints, no long-poll, no job ids. Faults are injected on
the first requests (see the server's docstring for the schedule format); the client must still
report the right result, with a bounded number of requests, or fail with the right error.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import SpecServer, awaitable
from vtrans.client import (
    AsyncClient,
    Client,
    JobFailed,
    PollPolicy,
    ProtocolError,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
    WaitTimeout,
)
from vtrans.protocol import Status

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
#: The schedule of these tests, pinned (the defaults are tuned by the benchmark and may change; a
#: first re-poll after ~3 s would only slow down jobs of a second): 0.5 s x 1.5^(i + phase).
POLL = PollPolicy(first=0.5, factor=1.5, max_interval=30.0)
#: Polls of that schedule for a job of up to ~1 s: 0, ~0.5-0.75, ~0.75-1.1, ~1.1-1.7 s.
POLLS_FOR_A_SECOND = math.ceil(math.log(1.0 / POLL.first, POLL.factor)) + 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the server process -----------------------------------------------------------------------


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the two clients behind one interface -----------------------------------------------------


class Api:
    """``Client`` (run in a worker thread) or ``AsyncClient`` behind ``await api.method(...)``;
    ``sent`` records each request attempt (``time.monotonic()``, method, path)."""

    def __init__(self, kind: str, url: str, *, timeout: float = 10.0, **kwargs: Any) -> None:
        self.kind = kind
        self.sent: list[tuple[float, str, str]] = []
        self.client: Client | AsyncClient
        if kind == "sync":
            http = httpx2.Client(base_url=url, timeout=timeout, event_hooks={"request": [self._record]})
            self.client = Client(url, timeout=timeout, http_client=http, **kwargs)
        else:

            async def record(request: httpx2.Request) -> None:
                self._record(request)

            ahttp = httpx2.AsyncClient(base_url=url, timeout=timeout, event_hooks={"request": [record]})
            self.client = AsyncClient(url, timeout=timeout, http_client=ahttp, **kwargs)

    def _record(self, request: httpx2.Request) -> None:
        self.sent.append((time.monotonic(), request.method, request.url.path))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return awaitable(self.kind, getattr(self.client, name))

    async def close(self) -> None:
        if isinstance(self.client, Client):
            self.client.close()
        else:
            await self.client.aclose()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> Iterator[Callable[..., Api]]:
    """``api(url, **client_kwargs)``: a client of the parametrized kind (closed at teardown), polling
    on ``POLL`` unless ``poll`` says otherwise."""
    made: list[Api] = []

    def make(url: str, **kwargs: Any) -> Api:
        kwargs.setdefault("poll", POLL)
        made.append(Api(request.param, url, **kwargs))
        return made[-1]

    yield make
    for each in made:
        if isinstance(each.client, Client):
            each.client.close()


# --- the server itself ------------------------------------------------------------------------


def test_the_spec_server_is_spec_literal(spec_server: Callable[..., SpecServer]) -> None:
    server = spec_server("--delay", "0.3")
    with httpx2.Client(base_url=server.url, timeout=5.0) as http:
        first = http.get("/status")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/json"
        assert first.json() == {"result": "pending"}
        assert "retry-after" not in first.headers
        assert http.get("/v1/jobs").status_code == 404
        assert http.post("/status").status_code == 405
        deadline = time.monotonic() + 5.0
        while http.get("/status").json()["result"] == "pending":
            assert time.monotonic() < deadline
        assert time.time() >= server.started + server.delay
        assert http.get("/status").json() == {"result": "completed"}
        assert http.get("/status", headers={"Prefer": "wait=5"}).headers.get("preference-applied") is None


def test_the_spec_server_rejects_a_bad_fault_schedule() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.servers.spec_server", "--faults", "500x3,teapot"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"unknown fault kind 'teapot'" in done.stderr


# --- waiting ----------------------------------------------------------------------------------


async def test_wait_on_the_spec_status(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "1.0")
    client = api(server.url)
    result = await client.wait()
    seen_at = time.time()
    assert result == Status(result="completed")  # exactly what the spec's server said
    assert seen_at >= server.started + server.delay
    # Geometric polling: the lag is at most (factor - 1) of the time waited, plus a request.
    assert seen_at - (server.started + server.delay) <= (POLL.factor - 1) * (seen_at - server.started) + 0.2
    assert len(client.sent) <= POLLS_FOR_A_SECOND
    assert {path for _, _, path in client.sent} == {"/status"}


async def test_wait_on_a_random_delay(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay-min", "0.2", "--delay-max", "1.5", "--seed", "3")
    client = api(server.url)
    assert (await client.wait()).result == "completed"
    seen_at = time.time()
    assert 0.2 <= server.delay <= 1.5
    assert seen_at >= server.started + server.delay
    assert seen_at - (server.started + server.delay) <= (POLL.factor - 1) * (seen_at - server.started) + 0.2


async def test_an_error_outcome_raises_job_failed(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "0.5", "--result", "error")
    client = api(server.url)
    with pytest.raises(JobFailed) as caught:
        await client.wait()
    assert caught.value.job.result == "error"
    assert caught.value.code  # the bare spec says nothing more: a generic code, not a crash
    assert time.time() >= server.started + server.delay
    returned = await client.wait(raise_on_error=False)
    assert returned.result == "error"


async def test_status_and_the_missing_api(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "30")
    client = api(server.url)
    assert (await client.status()).result == "pending"
    with pytest.raises(ProtocolError, match="answered 404 with text/plain"):
        await client.get("job_" + "0" * 32)  # no such route, not "no such job"
    assert len(client.sent) == 2, "not retried"


async def test_the_deadline_is_kept(spec_server: Callable[..., SpecServer], api: Callable[..., Api]) -> None:
    server = spec_server("--delay", "30")
    client = api(server.url)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(timeout=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 1.5
    assert client.sent[-1][0] - started >= 0.95  # the last poll went out at the deadline
    assert caught.value.requests == len(client.sent)
    assert caught.value.job is not None
    assert caught.value.job.result == "pending"


# --- faults -----------------------------------------------------------------------------------


FAULT_RUNS = {
    "500": ("500x3", 3),
    "502": ("502x3", 3),
    "503": ("503x3", 3),
    "504": ("504x2", 2),
    "html": ("html x3", 3),
    "invalid-json": ("json x3", 3),
    "unknown-result": ("unknown x3", 3),
    "empty-body": ("empty x2", 2),
    "reset": ("reset x3", 3),
    "mixed": ("500,html,json,reset,unknown,503,empty", 7),
    "later": ("ok,reset,500,html", 3),
}


#: Faults in a row walk up the backoff (0.2 s doubling by default: 7 in a row would take 6-12 s);
#: a smaller step keeps these runs short without changing what is checked.
QUICK_RETRY = RetryPolicy(backoff=0.02, max_backoff=0.2)


@pytest.mark.parametrize(("faults", "count"), list(FAULT_RUNS.values()), ids=list(FAULT_RUNS))
async def test_faults_for_a_while_still_give_the_right_result(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api], faults: str, count: int
) -> None:
    server = spec_server("--delay", "0.4", "--result", "error", "--faults", faults)
    client = api(server.url, retry=QUICK_RETRY)
    result = await client.wait(raise_on_error=False)
    assert result.result == "error"  # never a wrong result, never a crash
    assert time.time() >= server.started + server.delay
    assert count + 1 <= len(client.sent) <= count + POLLS_FOR_A_SECOND, server.log()
    assert server.log().count("GET /status") == len(client.sent)


async def test_429_retry_after_is_honoured(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "0", "--faults", "429x2:retry-after=1")
    client = api(server.url)
    started = time.monotonic()
    assert (await client.wait()).result == "completed"
    assert time.monotonic() - started >= 2.0  # two Retry-After: 1, each honoured
    assert len(client.sent) == 3
    gaps = [b[0] - a[0] for a, b in pairwise(client.sent)]
    assert all(gap >= 1.0 for gap in gaps), gaps


async def test_persistent_5xx_is_service_unavailable(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "0", "--faults", "503x*")
    client = api(server.url, retry=RetryPolicy(attempts=4, backoff=0.05))
    with pytest.raises(ServiceUnavailable) as caught:
        await client.wait()
    assert caught.value.status == 503
    assert len(client.sent) == 4


@pytest.mark.parametrize("garbage", ["html", "json", "unknown"])
async def test_persistent_garbage_is_a_protocol_error(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api], garbage: str
) -> None:
    server = spec_server("--delay", "0", "--faults", f"{garbage}x*")
    client = api(server.url, retry=RetryPolicy(attempts=3, backoff=0.05))
    with pytest.raises(ProtocolError):
        await client.wait()
    assert len(client.sent) == 3


async def test_a_stall_costs_the_clients_timeout_then_the_retry_succeeds(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    server = spec_server("--delay", "0.5", "--faults", "stall:seconds=6")
    client = api(server.url, timeout=0.5)
    started = time.monotonic()
    assert (await client.wait(transport="poll")).result == "completed"
    assert time.monotonic() - started < 3.0  # not the 6 s stall
    assert 2 <= len(client.sent) <= 1 + POLLS_FOR_A_SECOND


async def test_a_stall_after_the_first_answer_costs_the_clients_timeout(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    """With the default transport the client asks for long-polls (``Prefer: wait``); this server
    ignores them, as the first answer shows. ``timeout`` must then bound each request again."""
    server = spec_server("--delay", "0.5", "--faults", "ok,stall:seconds=6")
    client = api(server.url, timeout=0.5)
    started = time.monotonic()
    assert (await client.wait()).result == "completed"
    assert time.monotonic() - started < 3.0, server.log()  # not the 6 s stall


async def test_a_server_nobody_runs_is_a_transport_error(api: Callable[..., Api]) -> None:
    client = api(f"http://127.0.0.1:{unused_port()}", retry=RetryPolicy(attempts=3, backoff=0.05))
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        await client.wait()
    assert time.monotonic() - started < 2.0
    assert len(client.sent) == 3
    assert isinstance(caught.value.__cause__, httpx2.ConnectError)


async def test_poll_policy_is_honoured_on_the_wire(
    spec_server: Callable[..., SpecServer], api: Callable[..., Api]
) -> None:
    """A fixed-phase schedule (0, 0.2, 0.4, 0.8 ... s) is what the server sees, give or take a request.

    The server turns terminal 1.5 s after its start, so 0.8 to 1.5 s after the first poll (what
    lies between the server's start and the client's first request varies with the machine's load):
    the poll at 1.6 s is the first to see it."""
    server = spec_server("--delay", "1.5")
    client = api(server.url, poll=PollPolicy(first=0.2, factor=2.0, random_phase=False))
    assert (await client.wait()).result == "completed"
    start = client.sent[0][0]
    offsets = [t - start for t, _, _ in client.sent]
    assert len(offsets) == 5  # 0, 0.2, 0.4, 0.8, 1.6
    # The schedule counts from the wait's start, a moment before the first request is recorded.
    for got, want in zip(offsets, [0.0, 0.2, 0.4, 0.8, 1.6], strict=True):
        assert want - 0.01 <= got <= want + 0.15, offsets
