"""Connection hygiene: a slow or silent client is cut off in bounded time, and past its bounds the
service says 503 with ``Retry-After`` instead of slowing down for everyone."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from conftest import answer_within

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strict(module_service_factory: Callable[..., ServiceProcess]) -> ServiceProcess:
    return module_service_factory("--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1")


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda sock: None, id="silent"),
        pytest.param(lambda sock: sock.sendall(b"GET /status HTTP/1.1\r\nHost"), id="half-headers"),
        pytest.param(
            lambda sock: sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"),
            id="half-body",
        ),
    ],
)
def test_a_client_that_does_not_finish_its_request_is_cut_off(
    strict: ServiceProcess, send: Callable[[socket.socket], None]
) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        send(sock)
        took, data = answer_within(sock, 5)
    assert 0.9 <= took < 2.5, f"closed after {took:.2f}s"
    assert data.startswith(b"HTTP/1.1 408 Request Timeout"), data[:100]
    assert b"application/problem+json" in data
    assert "Traceback" not in strict.log_text(), "a request cut off is no error of the service's"


def test_slowloris_one_byte_a_time_is_cut_off_at_the_header_timeout(strict: ServiceProcess) -> None:
    request = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        started = time.monotonic()
        sent = 0
        try:
            while time.monotonic() - started < 5:
                sock.sendall(request[sent : sent + 1])
                sent += 1
                time.sleep(0.2)  # the drip itself, not a synchronisation
        except (BrokenPipeError, ConnectionResetError):
            pass
        _, data = answer_within(sock, 5)
    assert time.monotonic() - started < 2.5
    assert data.startswith(b"HTTP/1.1 408")


def test_an_idle_keep_alive_connection_is_closed(strict: ServiceProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        took, data = answer_within(sock, 5)
    assert data.startswith(b"HTTP/1.1 200")
    assert took < 2.5, "closed after the 1 s keep-alive timeout"


def test_past_the_connection_bound_a_503_problem(service_factory: ServiceFactory) -> None:
    svc = service_factory("--max-connections", "5")
    held = [socket.create_connection(("127.0.0.1", svc.port)) for _ in range(5)]
    try:
        for sock in held:  # each connection accepted and in use
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", svc.port)) as extra:
            _, data = answer_within(extra, 5)
        assert data.startswith(b"HTTP/1.1 503 Service Unavailable"), data[:200]
        assert b"retry-after: 1" in data.lower()
        assert b"too-many-connections" in data
    finally:
        for sock in held:
            sock.close()


def test_past_the_held_wait_bound_a_503_problem(
    service_factory: ServiceFactory, wait_until: Callable[..., Any], assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--max-held", "2")
    with svc.client(timeout=30) as http:
        job = http.post(
            "/v1/jobs", json={"language": "fr", "video_seconds": 9, "simulate": {"duration_seconds": 60}}
        ).json()
        path = f"/v1/jobs/{job['id']}"

        def hold() -> None:
            with svc.client(timeout=30) as mine:
                mine.get(path, headers={"Prefer": "wait=3"})

        threads = [threading.Thread(target=hold) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: http.get("/healthz").json()["waiting"] == 2, 10, message="two holds")
        refused = http.get(path, headers={"Prefer": "wait=3"})
        plain = http.get(path)
        for thread in threads:
            thread.join(10)
    assert_problem(refused, 503, code="too-many-waits")
    assert refused.headers["retry-after"] == "1"
    assert plain.status_code == 200, "a request that does not wait is still served"


def test_the_vtrans_client_rides_a_503_from_the_held_bound(
    service_factory: ServiceFactory, wait_until: Callable[..., Any]
) -> None:
    import vtrans

    svc = service_factory("--max-held", "1")
    statuses: list[int] = []
    hooks = {"response": [lambda response: statuses.append(response.status_code)]}
    http = httpx2.Client(base_url=svc.url, timeout=30, event_hooks=hooks)
    with vtrans.Client(svc.url, http_client=http) as client, svc.client(timeout=30) as other:
        job = client.create("fr", 9, simulate={"duration_seconds": 2, "outcome": "completed"})
        blocker = client.create("fr", 9, simulate={"duration_seconds": 600})
        path = f"/v1/jobs/{blocker.id}"
        holding = threading.Thread(target=lambda: other.get(path, headers={"Prefer": "wait=3"}))
        holding.start()
        wait_until(lambda: other.get("/healthz").json()["waiting"] == 1, 10, message="the one hold")
        assert job.id is not None
        done = client.wait(job.id, timeout=30)
        holding.join(10)
    assert done.result == "completed"
    assert 503 in statuses, "the wait met the bound, and rode it"
