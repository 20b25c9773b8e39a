"""Tenants: each API key sees its own jobs only, in every route, and signs its webhooks with a
secret of its own that it can rotate. Bytes that are not what a header should be get a 4xx."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from servers.receiver import Receiver
from vtrans.webhooks import WebhookVerificationError, verify

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

ALICE, BOB = "alice-key-123", "bob-key-456"
KEYS = ("--api-key", f"alice:{ALICE}", "--api-key", f"bob:{BOB}", "--webhook-retry-delays", "0.2")


@pytest.fixture(scope="module")
def shared(module_service_factory: Callable[..., ServiceProcess]) -> ServiceProcess:
    return module_service_factory(*KEYS)


@pytest.fixture
def alice(shared: ServiceProcess) -> Iterator[httpx2.Client]:
    with shared.client(headers={"Authorization": f"Bearer {ALICE}"}) as http:
        yield http


@pytest.fixture
def bob(shared: ServiceProcess) -> Iterator[httpx2.Client]:
    with shared.client(headers={"Authorization": f"Bearer {BOB}"}) as http:
        yield http


def create(http: httpx2.Client, seconds: float = 600, **fields: Any) -> dict[str, Any]:
    body = {"language": "fr", "video_seconds": 10, "simulate": {"duration_seconds": seconds}, **fields}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_another_tenants_job_does_not_exist_in_any_route(
    alice: httpx2.Client, bob: httpx2.Client, assert_problem: Callable[..., Any]
) -> None:
    job = create(alice)
    path = f"/v1/jobs/{job['id']}"
    refusals = {
        "get": bob.get(path),
        "long-poll": bob.get(path, headers={"Prefer": "wait=1"}),
        "cancel": bob.delete(path),
        "events": bob.get(f"{path}/events"),
        "webhook": bob.get(f"{path}/webhook"),
        "batch": bob.post("/v1/jobs/wait", json={"ids": [job["id"]]}),
        "status": bob.get("/status", params={"job_id": job["id"]}),
    }
    for route, answer in refusals.items():
        assert_problem(answer, 404, code="job-not-found"), route
    assert job["id"] not in {j["id"] for j in bob.get("/v1/jobs", params={"limit": 100}).json()["items"]}
    assert job["id"] in {j["id"] for j in alice.get("/v1/jobs", params={"limit": 100}).json()["items"]}
    assert alice.get(path).json()["result"] == "pending", "Bob's cancel changed nothing"
    assert alice.get("/status", params={"job_id": job["id"]}).json() == {"result": "pending"}


def test_without_a_key_nothing_is_revealed_but_the_services_own_status(
    shared: ServiceProcess, alice: httpx2.Client, assert_problem: Callable[..., Any]
) -> None:
    job = create(alice)
    with shared.client() as anonymous:
        for answer in (
            anonymous.get(f"/v1/jobs/{job['id']}"),
            anonymous.get("/v1/jobs"),
            anonymous.get("/status", params={"job_id": job["id"]}),
            anonymous.get("/v1/webhook-secret"),
            anonymous.post("/v1/jobs", json={"language": "fr", "video_seconds": 1}),
        ):
            assert_problem(answer, 401, code="unauthorized")
            assert answer.headers["www-authenticate"] == "Bearer"
        status = anonymous.get("/status")
    assert status.status_code == 200
    assert set(status.json()) == {"result"}


def test_idempotency_keys_are_per_tenant(alice: httpx2.Client, bob: httpx2.Client) -> None:
    body = {"language": "fr", "video_seconds": 10}
    key = {"Idempotency-Key": f"shared-key-{time.time()}"}
    first = alice.post("/v1/jobs", json=body, headers=key)
    again = alice.post("/v1/jobs", json=body, headers=key)
    theirs = bob.post("/v1/jobs", json=body, headers=key)
    assert (first.status_code, again.status_code, theirs.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xe9",
        b"Authorization: \xff\xfe\xfd",
        b"Authorization: Basic YWxpY2U6a2V5",
        b"Authorization: Bearer " + b"k" * 20000,
        b"Authorization: Bearer alice-key-123 \x80",
    ],
    ids=["latin-1", "garbage", "basic", "long", "trailing-byte"],
)
def test_any_bytes_in_the_credentials_get_a_401_and_the_connection_lives(
    shared: ServiceProcess, header: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as sock:
        for _ in range(2):  # the same connection answers the next request too
            sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
            status, head = read_response(sock)
            assert status == 401, head
            assert b"application/problem+json" in head


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Authorization: Bearer \x00\x01\x02", 400),
        (b"X-Note: a\x7fb", 400),
        (b"Authorization: Bearer " + b"k" * 40000, 431),
        (b"".join(b"X-H%d: v\r\n" % i for i in range(5000)).rstrip(b"\r\n"), 431),
    ],
    ids=["control-bytes", "delete-byte", "oversized", "too-many"],
)
def test_headers_that_are_not_http_get_a_4xx_problem(
    shared: ServiceProcess, header: bytes, status: int
) -> None:
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        answered, head = read_response(sock)
    assert answered == status, head
    assert b"application/problem+json" in head
    assert b"connection: close" in head.lower()
    with shared.client() as http:
        assert http.get("/status").status_code == 200, "the service serves on"


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the head of one answer, its body read too."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), head


# --- webhook secrets --------------------------------------------------------------------------


def test_each_tenant_signs_with_its_own_secret_and_can_rotate_it(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    svc = service_factory(*KEYS, "--webhook-secret-grace", "3")
    with (
        svc.client(headers={"Authorization": f"Bearer {ALICE}"}) as alice,
        svc.client(headers={"Authorization": f"Bearer {BOB}"}) as bob,
    ):
        secret_a, secret_b = (http.get("/v1/webhook-secret").json()["secret"] for http in (alice, bob))
        assert secret_a != secret_b
        assert alice.get("/v1/webhook-secret").json()["secret"] == secret_a, "kept, not drawn again"

        create(alice, 0.2, callback_url=hooks.url)
        [first] = wait_until(lambda: hooks.hooks or None, 10, message="alice's webhook")
        event = verify(first.body, first.headers, secret_a)
        assert event.type == "job.completed"
        with pytest.raises(WebhookVerificationError):
            verify(first.body, first.headers, secret_b)

        rotated = alice.post("/v1/webhook-secret/rotate").json()
        assert rotated["previous"] == secret_a
        assert rotated["secret"] not in (secret_a, secret_b)
        create(alice, 0.2, callback_url=hooks.url)
        second = wait_until(lambda: hooks.hooks[1:] or None, 10, message="a webhook during the grace")[0]
        assert len(second.headers["webhook-signature"].split()) == 2
        verify(second.body, second.headers, rotated["secret"])
        verify(second.body, second.headers, secret_a)

        wait_until(lambda: time.time() > rotated["previous_until"], 5, message="the grace to end")
        create(alice, 0.2, callback_url=hooks.url)
        third = wait_until(lambda: hooks.hooks[2:] or None, 10, message="a webhook after the grace")[0]
        verify(third.body, third.headers, rotated["secret"])
        with pytest.raises(WebhookVerificationError):
            verify(third.body, third.headers, secret_a)
        assert bob.get("/v1/webhook-secret").json()["secret"] == secret_b, "Bob's is untouched"
