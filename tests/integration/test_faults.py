"""Fault injection: each kind does what the README says, changes nothing when it says so, and the
vtrans client gets the right result or a typed error through every one of them."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

import vtrans

if TYPE_CHECKING:
    from conftest import ServiceProcess

pytestmark = pytest.mark.integration

BODY = {"language": "fr", "video_seconds": 5, "simulate": {"duration_seconds": 600}}


@pytest.fixture(scope="module")
def svc(module_service_factory: Callable[..., ServiceProcess]) -> ServiceProcess:
    return module_service_factory()


@pytest.fixture
def http(svc: ServiceProcess) -> Iterator[httpx2.Client]:
    with svc.client() as client:
        yield client


def count(http: httpx2.Client) -> int:
    return len(http.get("/v1/jobs", params={"limit": 100}).json()["items"])


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503), ("429:3", 429)])
def test_a_refusal_fault_changes_nothing(
    http: httpx2.Client, kind: str, status: int, assert_problem: Callable[..., Any]
) -> None:
    before = count(http)
    answer = http.post("/v1/jobs", json=BODY, headers={"Vtrans-Fault": kind})
    body = assert_problem(answer, status, code="injected-fault")
    assert "was not carried out" in body["detail"]
    assert answer.headers["vtrans-fault"] == f"{kind.split(':')[0]}; carried-out=0"
    if status == 429:
        assert answer.headers["retry-after"] == "3"
    assert count(http) == before


def test_503_after_says_it_was_carried_out_and_the_key_makes_the_retry_safe(http: httpx2.Client) -> None:
    before = count(http)
    key = {"Idempotency-Key": f"after-{time.time()}"}
    faulted = http.post("/v1/jobs", json=BODY, headers={**key, "Vtrans-Fault": "503-after"})
    assert faulted.status_code == 503
    assert "was carried out" in faulted.json()["detail"]
    assert faulted.headers["vtrans-fault"] == "503-after; carried-out=1"
    retried = http.post("/v1/jobs", json=BODY, headers=key)
    assert retried.status_code == 200, "a replay: the job the faulted request created"
    assert count(http) == before + 1


def test_reset_cuts_the_connection_before_anything_happens(svc: ServiceProcess, http: httpx2.Client) -> None:
    before = count(http)
    with socket.create_connection(("127.0.0.1", svc.port), timeout=5) as sock:
        payload = b'{"language": "fr", "video_seconds": 5}'
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nVtrans-Fault: reset\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        with pytest.raises(ConnectionResetError):
            drain(sock)
    assert count(http) == before
    assert "Traceback" not in svc.log_text()


def drain(sock: socket.socket) -> None:
    while sock.recv(65536):
        pass


def test_truncate_and_drip_mangle_the_answer_of_a_request_carried_out(http: httpx2.Client) -> None:
    before = count(http)
    with pytest.raises(httpx2.TransportError):  # a short body, or the reset first
        http.post("/v1/jobs", json=BODY, headers={"Vtrans-Fault": "truncate"})
    assert count(http) == before + 1
    started = time.monotonic()
    dripped = http.post("/v1/jobs", json=BODY, headers={"Vtrans-Fault": "drip:1.5"})
    assert 1.2 < time.monotonic() - started < 5
    assert dripped.status_code == 201
    assert dripped.json()["result"] == "pending"


def test_latency_delays_then_carries_out(http: httpx2.Client) -> None:
    started = time.monotonic()
    answer = http.get("/status", headers={"Vtrans-Fault": "latency:0.8"})
    assert answer.status_code == 200
    assert 0.75 < time.monotonic() - started < 3
    assert answer.headers["vtrans-fault"] == "latency; carried-out=1"


def test_an_unknown_fault_is_a_clear_400(http: httpx2.Client, assert_problem: Callable[..., Any]) -> None:
    assert_problem(http.get("/status", headers={"Vtrans-Fault": "meteor"}), 400, code="bad-fault")
    assert http.get("/healthz", headers={"Vtrans-Fault": "500"}).status_code == 200, "not the health check"


@pytest.mark.parametrize(
    "kind", ["500", "503", "429", "reset", "truncate", "503-after", "latency:0.3", "drip:0.5"]
)
def test_the_client_rides_every_fault(svc: ServiceProcess, kind: str) -> None:
    """The first two requests of every call carry the fault; the client still gets the right
    job, once (an Idempotency-Key makes its create safe to repeat)."""
    faulted: dict[str, int] = {}

    def inject(request: httpx2.Request) -> None:
        route = f"{request.method} {request.url.path}"
        if faulted.get(route, 0) < 2:
            faulted[route] = faulted.get(route, 0) + 1
            request.headers["Vtrans-Fault"] = kind

    transport = vtrans.client.http_transport()
    with httpx2.Client(base_url=svc.url, transport=transport, event_hooks={"request": [inject]}) as mine:
        retry = vtrans.RetryPolicy(backoff=0.05, max_backoff=0.2)
        with vtrans.Client(svc.url, http_client=mine, retry=retry) as client:
            job = client.create("fr", 5, simulate={"duration_seconds": 0.5, "outcome": "completed"})
            assert job.id is not None
            done = client.wait(job.id, timeout=30)
    assert done.result == "completed"
    assert done.id == job.id
    with httpx2.Client(base_url=svc.url) as http:
        same = [j for j in http.get("/v1/jobs", params={"limit": 100}).json()["items"] if j["id"] == job.id]
    assert len(same) == 1


def test_random_faults_follow_their_rates_and_the_seed(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    def statuses() -> list[int]:
        svc = service_factory("--faults", "503@0.3,500@0.2", "--seed", "11")
        with svc.client() as http:
            return [http.get("/status").status_code for _ in range(200)]

    first, second = statuses(), statuses()
    assert first == second, "the same seed, the same faults"
    assert 40 <= first.count(503) <= 80
    assert 20 <= first.count(500) <= 60
    assert first.count(200) == 200 - first.count(503) - first.count(500)


def test_the_fake_service_injects_faults_too() -> None:
    from vtrans.testing import FakeService

    with FakeService() as fake:
        client = fake.client()
        http = client._http
        with pytest.raises(httpx2.ReadError):
            http.get("/status", headers={"Vtrans-Fault": "reset"})
        assert http.get("/status", headers={"Vtrans-Fault": "503"}).status_code == 503
