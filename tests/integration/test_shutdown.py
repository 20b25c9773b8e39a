"""Stopping the service while clients wait: every held long-poll gets a real answer, every event
stream ends cleanly with a ``retry:`` hint, nothing is a 500, no traceback, and the process is
gone within the drain bound."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import pytest

from conftest import answer_within
from vtrans.server.config import ServerConfig
from vtrans.server.http import create_app

if TYPE_CHECKING:
    from conftest import ServiceFactory

pytestmark = pytest.mark.integration

#: The drain bound (``vtrans.server.run.DRAIN_SECONDS``), plus process start-up and exit.
EXITS_WITHIN = 5.0


def job(http: httpx2.Client, seconds: float = 600) -> str:
    body = {"language": "it", "video_seconds": 20, "simulate": {"duration_seconds": seconds}}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_held_waits_are_answered_and_streams_end_cleanly_on_shutdown(
    service_factory: ServiceFactory, wait_until: Callable[..., Any], sig: signal.Signals
) -> None:
    svc = service_factory()
    with svc.client() as http:
        ids = [job(http) for _ in range(3)]
    answers: list[httpx2.Response] = []
    streams: list[list[str]] = []
    failures: list[BaseException] = []

    def long_poll(job_id: str) -> None:
        try:
            with httpx2.Client(base_url=svc.url, timeout=30) as mine:
                answers.append(mine.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"}))
        except BaseException as exc:
            failures.append(exc)

    def batch() -> None:
        try:
            with httpx2.Client(base_url=svc.url, timeout=30) as mine:
                answers.append(mine.post("/v1/jobs/wait", json={"ids": ids}, headers={"Prefer": "wait=30"}))
        except BaseException as exc:
            failures.append(exc)

    def stream(job_id: str) -> None:
        try:
            with (
                httpx2.Client(base_url=svc.url, timeout=30) as mine,
                mine.stream("GET", f"/v1/jobs/{job_id}/events") as events,
            ):
                streams.append(list(events.iter_lines()))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=long_poll, args=(i,)) for i in ids]
    threads += [threading.Thread(target=batch), threading.Thread(target=stream, args=(ids[0],))]
    for thread in threads:
        thread.start()

    def held() -> bool:
        with svc.client() as http:
            return int(http.get("/healthz").json()["waiting"]) >= 5

    wait_until(held, 10, message="three long-polls, a batch wait and a stream held")
    assert svc.process is not None
    signalled = time.monotonic()
    svc.process.send_signal(sig)
    for thread in threads:
        thread.join(10)
    svc.process.wait(10)
    gone_after = time.monotonic() - signalled

    assert failures == []
    assert len(answers) == 4
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["preference-applied"] == "wait=30"
    singles = [a.json() for a in answers if a.request.method == "GET"]
    assert sorted(body["id"] for body in singles) == sorted(ids)
    assert all(body["result"] == "pending" for body in singles)
    assert next(a for a in answers if a.request.method == "POST").json() == {"items": [], "pending": 3}

    [lines] = streams
    assert lines[0].startswith("retry:")
    assert any(line.startswith("event: progress") for line in lines)
    assert [line for line in lines if line][-1] == lines[0], "the stream ends with its retry hint"

    assert gone_after < EXITS_WITHIN, f"the service took {gone_after:.1f}s to exit"
    log = svc.log_text()
    assert "Traceback" not in log
    assert "CancelledError" not in log
    assert "answering 5 held waits now" in log


def test_requests_still_arriving_at_shutdown_get_a_503_problem(service_factory: ServiceFactory) -> None:
    """A body or headers half sent when the signal comes: a 503 problem at once (the client may
    send it to another replica), not a 500 when the server stops waiting for the rest."""
    svc = service_factory()
    halves = [
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{",
        b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: a",
    ]
    socks = [socket.create_connection(("127.0.0.1", svc.port)) for _ in halves]
    for sock, half in zip(socks, halves, strict=True):
        sock.sendall(half)
    with svc.client() as http:  # both halves have been read by the time a later request is answered
        assert http.get("/healthz").status_code == 200
    assert svc.process is not None
    signalled = time.monotonic()
    svc.process.send_signal(signal.SIGTERM)
    answers = [answer_within(sock, 10)[1] for sock in socks]
    svc.process.wait(10)
    for sock in socks:
        sock.close()
    assert time.monotonic() - signalled < EXITS_WITHIN
    for data in answers:
        assert data.startswith(b"HTTP/1.1 503 Service Unavailable"), data[:100]
        assert b"retry-after: 1" in data
        assert b"urn:vtrans:problem:shutting-down" in data
    log = svc.log_text()
    assert "Traceback" not in log
    assert "graceful shutdown exceeded" not in log


@pytest.mark.anyio
async def test_a_request_during_the_drain_gets_a_503_problem() -> None:
    """In process: the window between the signal and the closing of connections is too short to
    hit from outside on purpose."""
    app = create_app(ServerConfig(store="memory"))
    await app.service.start()
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://vtrans.test") as http:
            assert (await http.get("/healthz")).status_code == 200
            app.service.drain()
            with anyio.fail_after(5):
                answer = await http.get("/status")
    finally:
        await app.service.stop()
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:vtrans:problem:shutting-down"
